%% SPDX-License-Identifier: Apache-2.0
%%
%% girder_pubsub - the Erlang side of bench/run's pub/sub section (driven by
%% bench/pubsub/pubsub.py). Run in a distributed node A, against nodes B and C
%% (which have this module on their code path, -pa):
%%
%%   bcast B,C Subs Msgs Size
%%       Phoenix.PubSub's shape on pg: a fresh pg scope on A, B and C; on each
%%       node a forwarder (a member of group {fwd, G}) and Subs / 3
%%       subscribers (members of group G; A takes the rest). The publisher
%%       sends each message once to every remote forwarder, which sends it to
%%       pg:get_local_members(Scope, G), and itself to its local members. A
%%       message is {pub, Topic, Bin} with Bin Size bytes built at run time.
%%       Each subscriber counts Msgs and sends done to the publisher; the
%%       clock runs from the first send until Subs dones are in. Prints
%%       erl_bc_subs, erl_bc_msgs, erl_bc_seconds, erl_bc_deliveries_per_s
%%   lat B Count
%%       one subscriber on B (and B's forwarder); each publish goes to the
%%       forwarder, which sends it to its local members; the subscriber
%%       answers pong straight to the publisher. 1,000 untimed, then Count
%%       timed round trips, one in flight. Prints erl_lat_count,
%%       erl_lat_median_us, erl_lat_p99_us, erl_lat_mean_us
%%   global B,C Count
%%       global:register_name({gb, Nonce, I}, Pid_I) for Count names (one idle
%%       process each, spawned untimed: global refuses two names for a pid), timed, then
%%       global:whereis_name for each, timed. Prints erl_gl_count,
%%       erl_gl_reg_per_s, erl_gl_whereis_per_s
%%
%% Output: key=value lines on stdout. Exit status 0 on success.
-module(girder_pubsub).
-export([main/1, start_scope/1, forwarder/2, subscriber/5]).

main([Cmd, NodesArg | Rest]) ->
    Nodes = [list_to_atom(N) || N <- string:split(NodesArg, ",", all)],
    [ok = wait_connected(N, 200) || N <- Nodes],
    case Cmd of
        "bcast" ->
            [Subs, Msgs, Size] = [list_to_integer(X) || X <- Rest],
            bcast(Nodes, Subs, Msgs, Size);
        "lat" -> lat(hd(Nodes), list_to_integer(hd(Rest)));
        "global" -> global(Nodes, list_to_integer(hd(Rest)))
    end,
    halt(0).

wait_connected(_Node, 0) -> {error, not_connected};
wait_connected(Node, N) ->
    case net_adm:ping(Node) of
        pong -> ok;
        pang -> timer:sleep(50), wait_connected(Node, N - 1)
    end.

%% A pg scope that outlives the rpc call that starts it.
start_scope(Scope) ->
    Self = self(),
    spawn(fun() ->
                  {ok, _} = pg:start_link(Scope),
                  Self ! {scope_up, Scope},
                  receive stop -> ok end
          end),
    receive {scope_up, Scope} -> ok after 30000 -> {error, scope_not_started} end.

forwarder(Scope, G) ->
    ok = pg:join(Scope, {fwd, G}, self()),
    forward_loop(Scope, G).

forward_loop(Scope, G) ->
    receive
        {fwd, Msg} ->
            [S ! Msg || S <- pg:get_local_members(Scope, G)],
            forward_loop(Scope, G);
        stop -> ok
    end.

subscriber(Scope, G, Owner, Mode, Msgs) ->
    ok = pg:join(Scope, G, self()),
    Owner ! {joined, self()},
    case Mode of
        count -> count_loop(Owner, Msgs, 0);
        echo -> echo_loop(Owner)
    end.

count_loop(Owner, Msgs, Msgs) -> Owner ! done;
count_loop(Owner, Msgs, N) ->
    receive {pub, _Topic, B} when is_binary(B) -> count_loop(Owner, Msgs, N + 1) end.

echo_loop(Owner) ->
    receive
        {pub, _Topic, B} when is_binary(B) -> Owner ! pong, echo_loop(Owner);
        stop -> ok
    end.

%% Scope, group, forwarders and subscribers on every node; returns the
%% remote forwarders once A's pg sees them all and every subscriber.
setup(Nodes, Counts, Mode, Msgs) ->
    %% unique across the fresh A nodes of a run too (unique_integer restarts
    %% with each VM, and B and C keep the scopes of earlier rounds)
    Scope = list_to_atom("gbps" ++ integer_to_list(erlang:system_time(nanosecond)) ++ "_"
                         ++ integer_to_list(erlang:unique_integer([positive]))),
    G = topic,
    ok = start_scope(Scope),
    [ok = rpc:call(N, ?MODULE, start_scope, [Scope]) || N <- Nodes],
    Fwds = [spawn(N, ?MODULE, forwarder, [Scope, G]) || N <- Nodes],
    Self = self(),
    Subs = lists:append([[spawn(N, ?MODULE, subscriber, [Scope, G, Self, Mode, Msgs])
                          || _ <- lists:seq(1, C)] || {N, C} <- lists:zip([node() | Nodes], Counts)]),
    [receive {joined, S} -> ok end || S <- Subs],
    Total = lists:sum(Counts),
    wait_members(Scope, G, Total, length(Nodes)),
    {Scope, G, [F || F <- pg:get_members(Scope, {fwd, G}), node(F) =/= node()], Fwds, Subs}.

wait_members(Scope, G, Total, NFwd) ->
    case {length(pg:get_members(Scope, G)), length(pg:get_members(Scope, {fwd, G}))} of
        {Total, NFwd} -> ok;
        _ -> timer:sleep(5), wait_members(Scope, G, Total, NFwd)
    end.

publish(Scope, G, Fwds, Msg) ->
    [F ! {fwd, Msg} || F <- Fwds],
    [S ! Msg || S <- pg:get_local_members(Scope, G)],
    ok.

bcast(Nodes, Subs, Msgs, Size) ->
    Per = Subs div (length(Nodes) + 1),
    Counts = [Subs - Per * length(Nodes) | [Per || _ <- Nodes]],
    {Scope, G, Fwds, AllFwds, _} = setup(Nodes, Counts, count, Msgs),
    Bin = binary:copy(<<0>>, Size),  % built at run time, as a real payload
    Topic = <<"bench.bc">>,
    T0 = erlang:monotonic_time(nanosecond),
    pub_n(Scope, G, Fwds, {pub, Topic, Bin}, Msgs),
    [receive done -> ok after 600000 -> exit(no_done) end || _ <- lists:seq(1, Subs)],
    S = (erlang:monotonic_time(nanosecond) - T0) / 1.0e9,
    [F ! stop || F <- AllFwds],
    io:format("erl_bc_subs=~b~nerl_bc_msgs=~b~nerl_bc_seconds=~.4f~n"
              "erl_bc_deliveries_per_s=~.1f~n", [Subs, Msgs, S, Subs * Msgs / S]).

pub_n(_Scope, _G, _Fwds, _Msg, 0) -> ok;
pub_n(Scope, G, Fwds, Msg, I) ->
    publish(Scope, G, Fwds, Msg),
    pub_n(Scope, G, Fwds, Msg, I - 1).

lat(B, N) ->
    {Scope, G, Fwds, AllFwds, Subs} = setup([B], [0, 1], echo, 0),
    Bin = binary:copy(<<0>>, 16),
    Msg = {pub, <<"bench.lat">>, Bin},
    [round_trip(Scope, G, Fwds, Msg) || _ <- lists:seq(1, 1000)],  % warm-up
    Ts = [round_trip(Scope, G, Fwds, Msg) || _ <- lists:seq(1, N)],
    [P ! stop || P <- AllFwds ++ Subs],
    S = list_to_tuple(lists:sort(Ts)),
    Median = element(N div 2 + 1, S),
    P99 = element(N * 99 div 100 + 1, S),
    Mean = lists:sum(Ts) / N,
    io:format("erl_lat_count=~b~nerl_lat_median_us=~.2f~nerl_lat_p99_us=~.2f~n"
              "erl_lat_mean_us=~.2f~n", [N, Median / 1000, P99 / 1000, Mean / 1000]).

round_trip(Scope, G, Fwds, Msg) ->
    T0 = erlang:monotonic_time(nanosecond),
    publish(Scope, G, Fwds, Msg),
    receive pong -> ok end,
    erlang:monotonic_time(nanosecond) - T0.

global(Nodes, N) ->
    global:sync(),
    Nonce = erlang:system_time(nanosecond),
    %% global refuses a second name for one pid: one idle process per name,
    %% spawned before the clock starts
    Ps = list_to_tuple([spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)]),
    T0 = erlang:monotonic_time(nanosecond),
    [yes = global:register_name({gb, Nonce, I}, element(I, Ps)) || I <- lists:seq(1, N)],
    T1 = erlang:monotonic_time(nanosecond),
    [true = is_pid(global:whereis_name({gb, Nonce, I})) || I <- lists:seq(1, N)],
    T2 = erlang:monotonic_time(nanosecond),
    %% visible everywhere: register_name returns once every node has it
    true = is_pid(rpc:call(lists:last(Nodes), global, whereis_name, [{gb, Nonce, N}])),
    [P ! stop || P <- tuple_to_list(Ps)],
    Rs = (T1 - T0) / 1.0e9, Ws = (T2 - T1) / 1.0e9,
    io:format("erl_gl_count=~b~nerl_gl_reg_s=~.4f~nerl_gl_reg_per_s=~.1f~n"
              "erl_gl_whereis_per_s=~.1f~nerl_gl_visible_ms=~.2f~n",
              [N, Rs, N / Rs, N / Ws, Rs * 1000]).
