%% SPDX-License-Identifier: Apache-2.0
%%
%% girder_bench - the Erlang/OTP half of `bench/run`: the same five workloads as
%% bench/bench.c, measured the same way, printed as the same key=value lines so
%% that bench/run can put both programs side by side.
%%
%%   spawn     us per spawn of N idle processes, spawned by one process; the clock
%%             stops when every child has started (each child bumps an atomics
%%             counter, the last one tells the spawner). Memory per idle process
%%             is the growth of erlang:memory(processes) / N; also printed: what
%%             process_info(P, memory) says for one child and the OS RSS growth.
%%   pingpong  round trips/s between two processes bouncing an atom.
%%   oneway    msgs/s of a stream of {msg, 42} from one process to another; the
%%             clock stops when the receiver has counted them all.
%%   ring      hops/s of one token round a ring of processes.
%%
%% Run with default schedulers and a process limit large enough for the spawn
%% benchmark:  erl -noshell +P 2000000 -pa DIR -eval 'girder_bench:main(["quick"])'
%% Arguments: "quick", "reps=N", "only=spawn,pingpong,oneway,ring".
-module(girder_bench).
-export([main/1, id/1]).

-define(NOW(), erlang:monotonic_time(nanosecond)).

main(Args) ->
    Opts = parse(Args, #{spawn => 1000000, pingpong => 1000000, oneway => 10000000,
                         ring_size => 1000, ring_hops => 1000000, reps => 3,
                         only => [spawn, pingpong, oneway, ring]}),
    Reps = maps:get(reps, Opts),
    out(impl, erlang),
    out(otp_release, erlang:system_info(otp_release)),
    out(schedulers, erlang:system_info(schedulers_online)),
    out(reps, Reps),
    Only = maps:get(only, Opts),
    [bench(K, Opts, Reps) || K <- [spawn, pingpong, oneway, ring], lists:member(K, Only)],
    halt(0).

parse([], O) -> O;
parse(["quick" | T], O) ->
    parse(T, O#{spawn := 100000, pingpong := 100000, oneway := 1000000,
                ring_hops := 100000, reps := 1});
parse(["reps=" ++ N | T], O) -> parse(T, O#{reps := list_to_integer(N)});
parse(["only=" ++ L | T], O) ->
    parse(T, O#{only := [list_to_atom(S) || S <- string:tokens(L, ",")]});
parse([A | T], O) ->
    case string:split(A, "=") of
        [K, V] -> parse(T, maps:put(list_to_atom(K), list_to_integer(V), O));
        _ -> parse(T, O)
    end.

out(K, V) when is_float(V) -> io:format("~s=~s~n", [K, float_to_list(V, [{decimals, 6}, compact])]);
out(K, V) when is_list(V) -> io:format("~s=~s~n", [K, V]);
out(K, V) -> io:format("~s=~p~n", [K, V]).

progress(Fmt, Args) -> io:format(standard_error, Fmt, Args).

%% Run Fun in a fresh process, so that no benchmark inherits another's heap or
%% mailbox; returns its result.
isolated(Fun) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({ok, Fun()}) end),
    receive
        {'DOWN', Ref, process, Pid, {ok, R}} -> R;
        {'DOWN', Ref, process, Pid, Other} -> erlang:error({bench_failed, Other})
    end.

median(L) -> lists:nth(length(L) div 2 + 1, lists:sort(L)).

runs(L) -> string:join([float_to_list(float(V), [{decimals, 6}, compact]) || V <- L], ",").

bench(spawn, O, Reps) ->
    N = maps:get(spawn, O),
    out(spawn_n, N),
    Rs = [begin
              progress("erlang-bench: spawn run ~p/~p ...", [I, Reps]),
              R = isolated(fun() -> spawn_bench(N) end),
              progress(" ~.4g us/spawn~n", [element(1, R)]),
              R
          end || I <- lists:seq(1, Reps)],
    Us = [element(1, R) || R <- Rs],
    {_, Mem, Info, Rss} = hd(Rs),
    out(spawn_us, median(Us)),
    out(spawn_us_runs, runs(Us)),
    out(mem_bytes, Mem),
    out(mem_info_bytes, Info),
    out(mem_rss_bytes, Rss);
bench(K, O, Reps) ->
    {NKey, VKey, Fun} =
        case K of
            pingpong -> N = maps:get(pingpong, O),
                        {pingpong_n, pingpong_rt_s, fun() -> pingpong(N) end};
            oneway -> N = maps:get(oneway, O),
                      {oneway_n, oneway_msgs_s, fun() -> oneway(N) end};
            ring -> Size = maps:get(ring_size, O),
                    N = maps:get(ring_hops, O) div Size * Size,
                    out(ring_size, Size),
                    {ring_hops, ring_hops_s, fun() -> ring(Size, N div Size) end}
        end,
    out(NKey, N),
    Vs = [begin
              progress("erlang-bench: ~p run ~p/~p ...", [K, I, Reps]),
              Ns = isolated(Fun),
              V = N / (Ns / 1.0e9),
              progress(" ~.4g /s~n", [V]),
              V
          end || I <- lists:seq(1, Reps)],
    out(VKey, median(Vs)),
    out(list_to_atom(atom_to_list(VKey) ++ "_runs"), runs(Vs)).

%% ---- spawn ---------------------------------------------------------------------

spawn_bench(N) ->
    Self = self(),
    A = atomics:new(1, []),
    Before = maps:from_keys(erlang:processes(), []),
    Child = fun() -> idle(A, N, Self) end,
    garbage_collect(),
    M0 = erlang:memory(processes),
    R0 = rss(),
    T0 = ?NOW(),
    First = spawn(Child),
    spawn_loop(N - 1, Child),
    receive all_started -> ok end,
    T1 = ?NOW(),
    M1 = erlang:memory(processes),
    R1 = rss(),
    {memory, Info} = process_info(First, memory),
    %% Not timed: stop the children and wait until they are gone.
    [exit(P, kill) || P <- erlang:processes(), not maps:is_key(P, Before)],
    wait_gone(maps:size(Before) + 1),
    {(T1 - T0) / 1000 / N, (M1 - M0) / N, Info, (R1 - R0) / N}.

spawn_loop(0, _) -> ok;
spawn_loop(K, F) -> spawn(F), spawn_loop(K - 1, F).

%% The idle child: count itself as started; the last one tells the spawner.
idle(A, N, Parent) ->
    case atomics:add_get(A, 1, 1) of
        N -> Parent ! all_started;
        _ -> ok
    end,
    receive stop -> ok end.

wait_gone(Max) ->
    case erlang:system_info(process_count) > Max of
        true -> receive after 10 -> wait_gone(Max) end;
        false -> ok
    end.

rss() ->
    {ok, B} = file:read_file("/proc/self/statm"),
    [_, Res | _] = string:tokens(binary_to_list(B), " \n"),
    list_to_integer(Res) * 4096.

%% ---- pingpong ------------------------------------------------------------------

pingpong(N) ->
    Self = self(),
    Pong = spawn(fun() -> pong(Self) end),
    T0 = ?NOW(),
    ping(Pong, N),
    T1 = ?NOW(),
    exit(Pong, kill),
    T1 - T0.

ping(_, 0) -> ok;
ping(Pong, K) ->
    Pong ! ping,
    receive pong -> ping(Pong, K - 1) end.

pong(Ping) ->
    receive ping -> Ping ! pong, pong(Ping) end.

%% ---- oneway --------------------------------------------------------------------

%% The payload is built at run time (not a literal), so every send copies it into
%% the receiver, as any real message would be.
id(X) -> X.

oneway(N) ->
    Self = self(),
    Msg = {msg, ?MODULE:id(42)},
    R = spawn(fun() -> recv(N, Self) end),
    T0 = ?NOW(),
    send(R, Msg, N),
    receive done -> ok end,
    T1 = ?NOW(),
    T1 - T0.

send(_, _, 0) -> ok;
send(R, Msg, K) -> R ! Msg, send(R, Msg, K - 1).

recv(0, Parent) -> Parent ! done;
recv(K, Parent) ->
    receive {msg, _} -> recv(K - 1, Parent) end.

%% ---- ring ----------------------------------------------------------------------

%% Size processes in the ring, this one included: node k forwards to node k+1,
%% the last back to us. One round is Size hops.
ring(Size, Rounds) ->
    Self = self(),
    Pids = lists:foldl(fun(_, [Next | _] = Acc) -> [spawn(fun() -> ring_node(Next) end) | Acc] end,
                       [Self], lists:seq(1, Size - 1)),
    First = hd(Pids),
    T0 = ?NOW(),
    First ! token,
    ring_driver(First, Rounds - 1),
    T1 = ?NOW(),
    [exit(P, kill) || P <- Pids, P =/= Self],
    T1 - T0.

ring_driver(_, 0) -> receive token -> ok end;
ring_driver(First, R) ->
    receive token -> First ! token, ring_driver(First, R - 1) end.

ring_node(Next) ->
    receive token -> Next ! token, ring_node(Next) end.
