#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# proto/fuzz/run.sh [SECONDS] - build the proto/ libFuzzer harnesses with clang
# (in build-fuzz/ at the top of the tree, or $GR_FUZZ_BUILD) and run each one
# for SECONDS (default 20) over the seed corpus in proto/fuzz/corpus/<name>/,
# which seedgen rewrites first (deterministically). New inputs go to a scratch
# directory, not the repository. Exits non-zero if any harness finds a crash,
# leak or undefined behaviour; the reproducer is left in build-fuzz/.
set -eu

secs=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${GR_FUZZ_BUILD:-$root/build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Dtests=disabled >/dev/null
else
    meson configure "$build" -Dfuzz=true >/dev/null
fi
if ! ninja -C "$build" proto/fuzz/fuzz_frame proto/fuzz/fuzz_handshake proto/fuzz/fuzz_term \
    proto/fuzz/seedgen >"$build/ninja.log" 2>&1; then
    cat "$build/ninja.log"
    exit 1
fi
"$build/proto/fuzz/seedgen" "$here/corpus"

status=0
for h in frame handshake term; do
    case $h in
    frame) maxlen=70000 ;;
    *) maxlen=4096 ;;
    esac
    work=$(mktemp -d)
    echo "== $h: ${secs}s"
    if ! "$build/proto/fuzz/fuzz_$h" -max_total_time="$secs" -max_len="$maxlen" \
        -print_final_stats=1 -artifact_prefix="$build/$h-" "$work" "$here/corpus/$h" \
        >"$build/$h.log" 2>&1; then
        echo "!! $h failed; see $build/$h.log"
        tail -n 30 "$build/$h.log"
        status=1
    else
        grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "$build/$h.log" || true
    fi
    rm -rf "$work"
done
exit $status
