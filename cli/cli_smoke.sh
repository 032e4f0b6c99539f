#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# cli_smoke.sh - the `girder` binary's argument handling, no node needed: every
# usage error exits 2 with a message naming what was wrong; --help/--version
# exit 0; an unreachable node exits 3; --json errors are one JSON document.
# Usage: cli_smoke.sh PATH/TO/girder
set -u
G=${1:?usage: cli_smoke.sh PATH/TO/girder}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

# expect CODE PATTERN -- ARGS...: exit code CODE and PATTERN in stdout+stderr
expect() {
    code=$1 pat=$2
    shift 3
    "$G" "$@" >"$T/out" 2>&1
    got=$?
    if [ "$got" -ne "$code" ] || ! grep -q -- "$pat" "$T/out"; then
        echo "FAIL: girder $* -> exit $got (want $code), output:" >&2
        sed 's/^/    /' "$T/out" >&2
        echo "    (wanted: $pat)" >&2
        fails=$((fails + 1))
    fi
}

export GIRDER_COOKIE=smoke-cookie
unset GIRDER_NODE GIRDER_COOKIE_FILE

expect 0 "Exit codes:" -- --help
expect 0 "Usage: girder \[OPTIONS\] rpc NODE MODULE FUNCTION" -- rpc --help
expect 0 "^girder [0-9]" -- --version
expect 2 "no command given" --
expect 2 "unknown command 'frobnicate'" -- frobnicate
expect 2 "unknown option '--frob'" -- --frob ping
expect 2 "option '--timeout' needs a value" -- --timeout
expect 2 "--timeout: 'soon' is not a number" -- --timeout soon ping
expect 2 "--timeout: '0' is not a number" -- --timeout 0 ping
expect 2 "-n: 'nohost' is not a node name" -- -n nohost ping
expect 2 "-n: bad port in 'a@h:70000'" -- -n a@h:70000 ping
expect 2 "ping: unexpected argument 'extra'" -- ping extra
expect 2 "unexpected argument '--json' (global options go before the command)" -- ping --json
expect 2 "join: missing argument: expected NAME@HOST:PORT" -- join
expect 2 "join: 'seed' is not NAME@HOST:PORT" -- join seed
expect 2 "rpc: missing arguments" -- rpc a@h
expect 2 "rpc: 'x' is not a node name" -- rpc x m f
expect 2 "JSON argument 2 'bare' is not valid JSON" -- rpc a@h m f 1 bare
expect 2 "JSON argument 1 '\[1,' is not valid JSON" -- rpc a@h m f '[1,'
expect 2 "not valid base64" -- rpc a@h m f '{"$bin":"!!"}'
expect 2 '^{"error":"usage","message":"unknown command' -- --json nope
expect 2 '^{"error":"usage","message":"-n: bad port' -- -n a@h:0 --json ping
expect 2 "option '-n' needs a value" -- -n
GIRDER_NODE=bad expect 2 "GIRDER_NODE: 'bad' is not a node name" -- ping
expect 0 "Usage: girder \[OPTIONS\] spawn \[--on NODE\] BEHAVIOUR" -- spawn --help
expect 2 "send: missing arguments: expected \[--after MS\] DEST JSON" -- send
expect 2 "send: missing argument: expected DEST JSON" -- send --after 10 w
expect 2 "send: missing argument: expected \[--after MS\] DEST JSON" -- send --after
expect 2 "send: --after 'x' is not a delay in ms" -- send --after x w 1
expect 2 "send: unexpected argument 'z'" -- send w 1 z
expect 2 "pub: missing argument: expected TOPIC JSON" -- pub t
expect 2 "pub: JSON argument 1 'bare' is not valid JSON" -- pub t bare
expect 2 "groups: unexpected argument 'b'" -- groups a b
expect 2 "call: 'a b' is not a DEST" -- call 'a b' 1
expect 2 "call: '<x>' is not a DEST" -- call '<x>' 1
expect 2 "info: 'w@nohost' is not a DEST" -- info w@nohost
expect 2 "send: JSON argument 1 'bare' is not valid JSON" -- send w bare
expect 2 "spawn: missing argument: expected NODE BEHAVIOUR" -- spawn --on
expect 2 "spawn: 'x' is not a node name" -- spawn --on x echo
expect 2 "spawn: unexpected argument 'z'" -- spawn echo 1 z
expect 2 "ps: 'x' is not a node name" -- ps x
expect 2 "kill: JSON argument 1 '{' is not valid JSON" -- kill w '{'
expect 0 "Usage: girder \[OPTIONS\] table SUBCOMMAND NAME" -- table --help
expect 2 "table: missing argument" -- table get
expect 2 "table: unknown subcommand 'frob'" -- table frob t
expect 2 "table: KEY 'k' is not valid JSON" -- table get t k
expect 2 "table: put: wrong number of arguments" -- table put t '"k"'
expect 2 "table: create: unknown option '--nope'" -- table create t --nope
expect 2 "table: --ttl: 'soon' is not a number" -- table put t 1 2 --ttl soon
expect 2 "table: incr: 'x' is not an integer" -- table incr t 1 x


# a port nobody listens on: bind-and-close is racy, so use port 1 on loopback
expect 3 "cannot connect to a@127.0.0.1:1: connection refused (is girderd running?)" \
    -- -n a@127.0.0.1:1 ping
expect 3 '^{"error":"ECONNREFUSED","message":"cannot connect' -- --json -n a@127.0.0.1:1 ping
expect 3 "cannot resolve host nowhere.invalid" -- -n a@nowhere.invalid ping

# no usable cookie: exit 4 naming the file
unset GIRDER_COOKIE
expect 4 "$T/none does not exist" -- --cookie-file "$T/none" -n a@127.0.0.1:1 ping
printf 'c\n' >"$T/open" && chmod 644 "$T/open"
expect 4 "/dev/null: not a regular file" -- --cookie-file /dev/null ping
expect 4 "readable or writable by group or others (chmod 600" -- --cookie-file "$T/open" ping

if [ "$fails" -ne 0 ]; then
    echo "$fails smoke check(s) failed" >&2
    exit 1
fi
echo "all smoke checks passed"
