%% SPDX-License-Identifier: Apache-2.0
%%
%% girder_ports - the Erlang side of bench/run's ports section (driven by
%% bench/ports/ports.py): the echo program bench/ports/echo.c (argument
%% "erlang") behind an Erlang port opened with {packet, 4}.
%%
%%   port Prog Count Window Size
%%       open_port({spawn_executable, Prog}, [{packet, 4}, binary,
%%       {args, ["erlang"]}]); 1,000 untimed round trips; then Count messages
%%       of Size bytes (a binary built at run time) with at most Window in
%%       flight. Window 1: each round trip timed (median, p99). Prints
%%       erl_port_count, erl_port_window, erl_port_seconds, erl_port_msgs_s,
%%       and with Window 1 erl_port_median_us, erl_port_p99_us.
%%
%% Output: key=value lines on stdout. Exit status 0 on success.
-module(girder_ports).
-export([main/1]).

main(["port", Prog, C, W, S]) ->
    port(Prog, list_to_integer(C), list_to_integer(W), list_to_integer(S)),
    halt(0).

port(Prog, N, W, Size) ->
    Port = open_port({spawn_executable, Prog}, [{packet, 4}, binary, {args, ["erlang"]}]),
    Bin = binary:copy(<<0>>, Size),
    [rt(Port, Bin) || _ <- lists:seq(1, 1000)],  % warm-up
    T0 = erlang:monotonic_time(nanosecond),
    Ts = case W of
             1 -> [rt(Port, Bin) || _ <- lists:seq(1, N)];
             _ -> window(Port, Bin, N, W), []
         end,
    S = (erlang:monotonic_time(nanosecond) - T0) / 1.0e9,
    port_close(Port),
    io:format("erl_port_count=~b~nerl_port_window=~b~nerl_port_seconds=~.4f~n"
              "erl_port_msgs_s=~.1f~n", [N, W, S, N / S]),
    case Ts of
        [] -> ok;
        _ ->
            St = list_to_tuple(lists:sort(Ts)),
            io:format("erl_port_median_us=~.2f~nerl_port_p99_us=~.2f~n",
                      [element(N div 2 + 1, St) / 1000, element(N * 99 div 100 + 1, St) / 1000])
    end.

rt(Port, Bin) ->
    T0 = erlang:monotonic_time(nanosecond),
    true = port_command(Port, Bin),
    receive {Port, {data, _}} -> ok end,
    erlang:monotonic_time(nanosecond) - T0.

%% Keep W in flight: send W, then one more per echo until N are sent.
window(Port, Bin, N, W) ->
    First = min(N, W),
    [port_command(Port, Bin) || _ <- lists:seq(1, First)],
    window_loop(Port, Bin, N, First, 0).

window_loop(_Port, _Bin, N, _Sent, N) -> ok;
window_loop(Port, Bin, N, Sent, Got) ->
    receive
        {Port, {data, _}} ->
            Sent1 = case Sent < N of
                        true -> port_command(Port, Bin), Sent + 1;
                        false -> Sent
                    end,
            window_loop(Port, Bin, N, Sent1, Got + 1)
    end.
