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
%%   pingpong B N    spawn an echo process on B; bounce `ping` (`pong` back)
%%                   off it 1,000 times untimed, then N times, each round trip
%%                   timed; prints erl_pp_count, erl_pp_median_us, erl_pp_p99_us,
%%                   erl_pp_mean_us
%%   stream B N Size after an untimed warm-up of N div 10 (the link is new),
%%                   spawn a sink on B; send it N binaries of Size bytes (built
%%                   at run time) in a plain send loop (the distribution's own
%%                   busy-port backpressure paces it); the sink acks once after
%%                   the last; the clock stops when the ack arrives. Prints
%%                   erl_stream_count, erl_stream_size, erl_stream_seconds,
%%                   erl_stream_msgs_s, erl_stream_mb_s (10^6 bytes/s)
%%
%% B must have this module on its code path (pingpong, stream: -pa).
%% Output: key=value lines on stdout. Exit status 0 on success.
-module(girder_net).
-export([main/1, echo/1, sink/2]).

main([Cmd, B | Rest]) ->
    Node = list_to_atom(B),
    ok = wait_connected(Node, 200),
    case Cmd of
        "latency" -> latency(Node, list_to_integer(hd(Rest)));
        "detect" -> detect(Node);
        "pingpong" -> pingpong(Node, list_to_integer(hd(Rest)));
        "stream" -> [N, Size] = Rest, stream(Node, list_to_integer(N), list_to_integer(Size))
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

pingpong(Node, N) ->
    Echo = spawn(Node, ?MODULE, echo, [self()]),
    [round_trip(Echo) || _ <- lists:seq(1, 1000)],  % warm-up, as Girder's
    Ts = [round_trip(Echo) || _ <- lists:seq(1, N)],
    Echo ! stop,
    S = list_to_tuple(lists:sort(Ts)),
    Median = element(N div 2 + 1, S),
    P99 = element(N * 99 div 100 + 1, S),
    Mean = lists:sum(Ts) / N,
    io:format("erl_pp_count=~b~nerl_pp_median_us=~.2f~nerl_pp_p99_us=~.2f~n"
              "erl_pp_mean_us=~.2f~n", [N, Median / 1000, P99 / 1000, Mean / 1000]).

round_trip(Echo) ->
    T0 = erlang:monotonic_time(nanosecond),
    Echo ! ping,
    receive pong -> ok end,
    erlang:monotonic_time(nanosecond) - T0.

echo(Owner) ->
    receive
        ping -> Owner ! pong, echo(Owner);
        stop -> ok
    end.

stream(Node, N, Size) ->
    Bin = binary:copy(<<0>>, Size),  % built at run time, as a real payload
    %% Warm-up, untimed: this VM's link to B is new, where Girder's nodes have
    %% used theirs for the earlier rows (TCP buffers grown, allocators warm).
    W = max(1, N div 10),
    Warm = spawn(Node, ?MODULE, sink, [self(), W]),
    send_n(Warm, Bin, W),
    receive {ack, W} -> ok after 600000 -> exit(no_warmup_ack) end,
    Sink = spawn(Node, ?MODULE, sink, [self(), N]),
    T0 = erlang:monotonic_time(nanosecond),
    send_n(Sink, Bin, N),
    receive {ack, N} -> ok after 600000 -> exit(no_ack) end,
    S = (erlang:monotonic_time(nanosecond) - T0) / 1.0e9,
    io:format("erl_stream_count=~b~nerl_stream_size=~b~nerl_stream_seconds=~.4f~n"
              "erl_stream_msgs_s=~.1f~nerl_stream_mb_s=~.2f~n",
              [N, Size, S, N / S, N * Size / 1.0e6 / S]).

send_n(_Sink, _Bin, 0) -> ok;
send_n(Sink, Bin, I) -> Sink ! Bin, send_n(Sink, Bin, I - 1).

sink(Owner, N) -> sink(Owner, N, 0).

sink(Owner, N, N) -> Owner ! {ack, N};
sink(Owner, N, I) ->
    receive B when is_binary(B) -> sink(Owner, N, I + 1) end.
