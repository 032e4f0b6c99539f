%% SPDX-License-Identifier: Apache-2.0
%%
%% girder_net - the Erlang side of bench/run's network section (driven by
%% bench/net/net.py). Run in a distributed node A, against node B:
%%
%%   latency B N     N round trips of rpc:call(B, erlang, node, []) after a
%%                   warm-up, each timed with erlang:monotonic_time; prints
%%                   erl_rpc_count, erl_rpc_median_us, erl_rpc_p99_us,
%%                   erl_rpc_mean_us
%%   detect B        monitor_nodes(true); kill -STOP B's OS process; time until
%%                   {nodedown, B} arrives; kill -KILL B; prints erl_detect_s
%%                   (run it with -kernel net_ticktime T on both nodes)
%%
%% Output: key=value lines on stdout. Exit status 0 on success.
-module(girder_net).
-export([main/1]).

main([Cmd, B | Rest]) ->
    Node = list_to_atom(B),
    ok = wait_connected(Node, 200),
    case Cmd of
        "latency" -> latency(Node, list_to_integer(hd(Rest)));
        "detect" -> detect(Node)
    end,
    halt(0).

wait_connected(_Node, 0) -> {error, not_connected};
wait_connected(Node, N) ->
    case net_adm:ping(Node) of
        pong -> ok;
        pang -> timer:sleep(50), wait_connected(Node, N - 1)
    end.

latency(Node, N) ->
    Node = rpc:call(Node, erlang, node, []),
    [rpc:call(Node, erlang, node, []) || _ <- lists:seq(1, min(N, 2000))],  % warm-up
    Ts = [one_call(Node) || _ <- lists:seq(1, N)],
    S = list_to_tuple(lists:sort(Ts)),
    Median = element(N div 2 + 1, S),
    P99 = element(min(N, (N * 99 + 99) div 100), S),
    Mean = lists:sum(Ts) / N,
    io:format("erl_rpc_count=~b~nerl_rpc_median_us=~.2f~nerl_rpc_p99_us=~.2f~n"
              "erl_rpc_mean_us=~.2f~n", [N, Median / 1000, P99 / 1000, Mean / 1000]).

one_call(Node) ->
    T0 = erlang:monotonic_time(nanosecond),
    Node = rpc:call(Node, erlang, node, []),
    erlang:monotonic_time(nanosecond) - T0.

detect(Node) ->
    ok = net_kernel:monitor_nodes(true),
    Pid = rpc:call(Node, os, getpid, []),
    os:cmd("kill -STOP " ++ Pid),
    %% The clock starts once the stop is certain (after kill returned): if
    %% anything, this favours Erlang by the few ms os:cmd takes.
    T0 = erlang:monotonic_time(microsecond),
    receive
        {nodedown, Node} -> ok
    after 200000 -> exit(no_nodedown)
    end,
    T1 = erlang:monotonic_time(microsecond),
    os:cmd("kill -KILL " ++ Pid),
    io:format("erl_detect_s=~.3f~nerl_ticktime_s=~p~n", [(T1 - T0) / 1.0e6, net_kernel:get_net_ticktime()]).
