%% SPDX-License-Identifier: Apache-2.0
%%
%% girder_tables.erl - the Erlang side of bench/tables/tables.py: ETS and
%% Mnesia doing the workloads of girder-bench-tables and of the replicated
%% put bench, on this machine in the same run.
%%
%%   girder_tables:main(["ets", Keys, Ops])
%%       An ETS set of Keys entries, key <<"key:%08d">> (12 bytes, as
%%       girder-bench-tables), value the integer 1. Random ets:lookup and
%%       ets:insert of existing keys from 1 process and from one process per
%%       scheduler, each doing Ops operations. Two table variants: default
%%       options, and {read_concurrency,true},{write_concurrency,true}; the
%%       better of the two is ETS's figure for each row (the demanding
%%       comparison). Prints key=value lines: ets_get_1p, ets_get_Np,
%%       ets_put_1p, ets_put_Np (ops/s of wall time), the same with
%%       _per_proc_cpu_s (ops per CPU second of the whole BEAM process: utime
%%       + stime of /proc/self/stat over the run, the figure
%%       girder-bench-tables reads with CLOCK_PROCESS_CPUTIME_ID; best variant
%%       too), ets_procs (N), ets_bytes_per_entry (ets:info(T, memory) words x
%%       wordsize / size). bench/tables/tables.py starts the VM with +sbwt
%%       none (and for the dirty schedulers): a scheduler that spins while
%%       it waits for work would burn CPU seconds that are not ETS's.
%%
%%   girder_tables:main(["mnesia", Keys, NodeB, NodeC])
%%       On this node (A) and the connected nodes B and C: a ram_copies
%%       table on all three; from one process on each node at once, Keys/3
%%       distinct mnesia:dirty_write of {bt, <<"key:N">>, 24-byte binary};
%%       the clock stops when every node's table holds every write.
%%       Prints mnesia_puts (Keys), mnesia_s, mnesia_puts_s.
%%
%% Random keys: the MINSTD generator (X * 48271 rem 2^31-1) keeps every
%% intermediate a small integer (no bignums in the loop).
-module(girder_tables).
-export([main/1, writer/3]).

main(["ets", K, O]) ->
    ets_bench(list_to_integer(K), list_to_integer(O), 100);
main(["ets", K, O, Hz]) ->
    ets_bench(list_to_integer(K), list_to_integer(O), list_to_integer(Hz)),
    halt(0);
main(["mnesia", K, B, C]) ->
    mnesia_bench(list_to_integer(K), [list_to_atom(B), list_to_atom(C)]),
    halt(0);
main(Args) ->
    io:format(standard_error, "girder_tables: bad arguments ~p~n", [Args]),
    halt(2).

key(I) -> list_to_binary(io_lib:format("key:~8..0B", [I])).

%% ---- ETS ----------------------------------------------------------------------
ets_bench(NKeys, Ops, Hz) ->
    Keys = list_to_tuple([key(I) || I <- lists:seq(0, NKeys - 1)]),
    Procs = erlang:system_info(schedulers_online),
    Variants = [[set, public], [set, public, {read_concurrency, true}, {write_concurrency, true}]],
    Rows = [begin
                T = ets:new(bench, Opts),
                [ets:insert(T, {element(I, Keys), 1}) || I <- lists:seq(1, NKeys)],
                Mem = ets:info(T, memory) * erlang:system_info(wordsize) / ets:info(T, size),
                R = [{get, 1, run(T, Keys, Ops, get, 1)},
                     {get, Procs, run(T, Keys, Ops, get, Procs)},
                     {put, 1, run(T, Keys, Ops, put, 1)},
                     {put, Procs, run(T, Keys, Ops, put, Procs)}],
                ets:delete(T),
                {Mem, R}
            end || Opts <- Variants],
    io:format("ets_procs=~b~n", [Procs]),
    io:format("ets_bytes_per_entry=~.1f~n", [lists:min([M || {M, _} <- Rows])]),
    lists:foreach(
      fun({Op, P}) ->
              Best = lists:max([W || {_, R} <- Rows, {O, Q, {W, _}} <- R, O =:= Op, Q =:= P]),
              BestC = lists:max([C || {_, R} <- Rows, {O, Q, {_, C}} <- R, O =:= Op, Q =:= P]),
              Tag = if P =:= 1 -> "1p"; true -> "Np" end,
              io:format("ets_~s_~s=~b~n", [Op, Tag, round(Best)]),
              io:format("ets_~s_~s_per_proc_cpu_s=~b~n", [Op, Tag, round(BestC * Hz)])
      end, [{get, 1}, {get, Procs}, {put, 1}, {put, Procs}]).

%% CPU time of this OS process (every thread, user + system) in clock ticks.
cpu_ticks() ->
    {ok, B} = file:read_file("/proc/self/stat"),
    [_, Rest] = string:split(B, ")", trailing), % the command may hold spaces
    F = string:lexemes(Rest, " "),              % F[1] is field 3 (state)
    binary_to_integer(lists:nth(12, F)) + binary_to_integer(lists:nth(13, F)).

%% Ops operations from each of P processes at once; {ops/s of wall time,
%% ops per clock tick of the process's CPU time}.
run(T, Keys, Ops, Op, P) ->
    Self = self(),
    C0 = cpu_ticks(),
    T0 = erlang:monotonic_time(),
    Pids = [spawn_opt(fun() -> loop(T, Keys, tuple_size(Keys), Ops, Op, 1 + I * 7919),
                               Self ! {done, self()} end, [link])
            || I <- lists:seq(1, P)],
    [receive {done, Pid} -> ok end || Pid <- Pids],
    Dt = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond),
    C = max(cpu_ticks() - C0, 1),
    {Ops * P / (Dt / 1.0e6), Ops * P / C}.

loop(_T, _Keys, _N, 0, _Op, _X) ->
    ok;
loop(T, Keys, N, Ops, get, X) ->
    X1 = X * 48271 rem 2147483647,
    [_] = ets:lookup(T, element(X1 rem N + 1, Keys)),
    loop(T, Keys, N, Ops - 1, get, X1);
loop(T, Keys, N, Ops, put, X) ->
    X1 = X * 48271 rem 2147483647,
    true = ets:insert(T, {element(X1 rem N + 1, Keys), 2}),
    loop(T, Keys, N, Ops - 1, put, X1).

%% ---- Mnesia -------------------------------------------------------------------
mnesia_bench(NKeys, Others) ->
    Nodes = [node() | Others],
    [pong = net_adm:ping(N) || N <- Others],
    %% ram-only schema on every node: start mnesia everywhere, then let A
    %% bring the others into its schema.
    [ok = rpc:call(N, mnesia, start, []) || N <- Nodes],
    {ok, _} = mnesia:change_config(extra_db_nodes, Others),
    {atomic, ok} = mnesia:create_table(bt, [{ram_copies, Nodes}, {attributes, [k, v]}]),
    ok = mnesia:wait_for_tables([bt], 30000),
    [ok = rpc:call(N, mnesia, wait_for_tables, [[bt], 30000]) || N <- Others],
    Per = NKeys div 3,
    Total = Per * 3,
    Self = self(),
    T0 = erlang:monotonic_time(),
    [spawn(N, ?MODULE, writer, [Self, I * Per, Per]) || {I, N} <- lists:zip([0, 1, 2], Nodes)],
    [receive {written, _} -> ok end || _ <- Nodes],
    wait_all(Nodes, Total),
    Dt = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1.0e6,
    io:format("mnesia_puts=~b~nmnesia_s=~.3f~nmnesia_puts_s=~b~n", [Total, Dt, round(Total / Dt)]).

writer(Parent, Start, Count) ->
    V = binary:copy(<<"v">>, 24),
    [ok = mnesia:dirty_write({bt, list_to_binary(["key:", integer_to_list(I)]), V})
     || I <- lists:seq(Start, Start + Count - 1)],
    Parent ! {written, node()}.

wait_all(Nodes, Total) ->
    case lists:all(fun(N) -> rpc:call(N, mnesia, table_info, [bt, size]) =:= Total end, Nodes) of
        true -> ok;
        false -> timer:sleep(5), wait_all(Nodes, Total)
    end.
