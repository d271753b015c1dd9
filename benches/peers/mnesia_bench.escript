#!/usr/bin/env escript
%%! -sname mnema_bench_driver -setcookie mnema_bench
%%
%% The Mnesia peer of mnema's benchmark harness (`benches/peers.rs` runs it; see
%% BENCHMARKS.md). Starts three Erlang nodes on this machine, a `disc_copies` table on all
%% three, and runs the harness's load shapes on them; prints one JSON object per line.
%%
%% Usage: mnesia_bench.escript DIR SECS WRITERS EXACT_ROUTES WILD_ROUTES SESSIONS
%%   DIR       an empty directory for the three nodes' Mnesia files
%%   SECS      seconds per write cell
%%   WRITERS   comma-separated concurrency levels, e.g. 1,64,256
-mode(compile).

main([Dir, Secs, Writers, Exact, Wild, Sessions]) ->
    Micros = list_to_integer(Secs) * 1000000,
    Levels = [list_to_integer(W) || W <- string:split(Writers, ",", all)],
    Nodes = start_nodes(Dir),
    setup(Nodes),
    writes(Nodes, Micros, Levels),
    watches(Nodes, Micros),
    reads(Nodes, Micros),
    sessions(Nodes, list_to_integer(Sessions)),
    routes(hd(Nodes), Micros, list_to_integer(Exact), list_to_integer(Wild)),
    halt(0);
main(_) ->
    io:format(standard_error, "usage: mnesia_bench.escript DIR SECS WRITERS EXACT WILD SESSIONS~n", []),
    halt(2).

start_nodes(Dir) ->
    Here = filename:dirname(escript:script_name()),
    {ok, mnesia_load, Bin} = compile:file(filename:join(Here, "mnesia_load.erl"), [binary, report]),
    {module, mnesia_load} = code:load_binary(mnesia_load, "mnesia_load.erl", Bin),
    Cookie = atom_to_list(erlang:get_cookie()),
    Nodes = [begin
                 NodeDir = filename:join(Dir, "m" ++ integer_to_list(I)),
                 ok = filelib:ensure_path(NodeDir),
                 {ok, _Peer, Node} = peer:start_link(#{
                     name => list_to_atom("mnema_bench_m" ++ integer_to_list(I)),
                     args => ["-setcookie", Cookie, "-mnesia", "dir", "\"" ++ NodeDir ++ "\""]}),
                 {module, mnesia_load} = erpc:call(Node, code, load_binary, [mnesia_load, "mnesia_load.erl", Bin]),
                 Node
             end || I <- [1, 2, 3]],
    Nodes.

setup(Nodes = [N1 | _]) ->
    ok = erpc:call(N1, mnesia, create_schema, [Nodes]),
    [{ok, _} = R || R <- erpc:multicall(Nodes, application, ensure_all_started, [mnesia])],
    {atomic, ok} = erpc:call(N1, mnesia, create_table,
                             [kv, [{disc_copies, Nodes}, {attributes, [k, v]}]]),
    {atomic, ok} = erpc:call(N1, mnesia, create_table,
                             [session, [{disc_copies, Nodes},
                                        {attributes, [client_id, subscriptions, expiry_interval_s,
                                                      owner, connected, created_at_ms,
                                                      updated_at_ms]}]]),
    {atomic, ok} = erpc:call(N1, mnesia, create_table,
                             [route, [{ram_copies, [N1]}, {type, bag}, {attributes, [topic, dest]}]]),
    ok = erpc:call(N1, mnesia, wait_for_tables, [[kv, session, route], 60000]).

writes(Nodes = [N1 | _], Micros, Levels) ->
    Cells = [{D, P, C} || D <- [async, sync], P <- [spread, one_node], C <- Levels],
    lists:foldl(
      fun({Durability, Placement, C}, Id0) ->
              T0 = erlang:monotonic_time(microsecond),
              Pids = [spawn(case Placement of
                                spread -> lists:nth(I rem 3 + 1, Nodes);
                                one_node -> N1
                            end,
                            mnesia_load, write_worker, [self(), Id0 + I, Micros, Durability, Nodes])
                      || I <- lists:seq(0, C - 1)],
              Lats = collect(Pids, []),
              Elapsed = erlang:monotonic_time(microsecond) - T0,
              emit([{bench, write}, {durability, Durability}, {placement, Placement},
                    {writers, C} | stats(Lats, Elapsed)]),
              Id0 + C
      end, 1, Cells).

%% `mnesia:subscribe({table, kv, simple})`, the peer of mnema's watch cells: 0, 1, 10 and
%% 100 subscribers spread over the nodes while 64 writers spread write (`transaction`);
%% the writes' latencies, and the events delivered per second.
watches(Nodes, Micros) ->
    Writers = 64,
    lists:foreach(
      fun(W) ->
              Subs = [begin
                          S = spawn(lists:nth(I rem 3 + 1, Nodes), mnesia_load, subscriber, [self()]),
                          receive {subscribed, S} -> S after 10000 -> error({not_subscribed, S}) end
                      end || I <- lists:seq(0, W - 1)],
              T0 = erlang:monotonic_time(microsecond),
              Pids = [spawn(lists:nth(I rem 3 + 1, Nodes), mnesia_load, write_worker,
                            [self(), 5000000 + W * 1000 + I, Micros, async, Nodes])
                      || I <- lists:seq(0, Writers - 1)],
              Lats = collect(Pids, []),
              Written = length(Lats),
              Delivered = delivered(Subs, Written * W, erlang:monotonic_time(millisecond) + 10000),
              Elapsed = erlang:monotonic_time(microsecond) - T0,
              [S ! stop || S <- Subs],
              emit([{bench, watch_write}, {watchers, W}, {durability, async}, {placement, spread},
                    {writers, Writers} | stats(Lats, Elapsed)]),
              W > 0 andalso
                  emit([{bench, watch_delivered}, {watchers, W}, {writers, Writers}, {ops, Delivered},
                        {secs, Elapsed / 1.0e6},
                        {ops_per_s, Delivered * 1.0e6 / Elapsed}])
      end, [0, 1, 10, 100]).

%% Events the subscribers received, once they reach `Want` (or at `Until`, ms).
delivered(Subs, Want, Until) ->
    N = lists:sum([begin
                       S ! {count, self()},
                       receive {count, S, C} -> C after 10000 -> 0 end
                   end || S <- Subs]),
    case N >= Want orelse erlang:monotonic_time(millisecond) >= Until of
        true -> N;
        false -> timer:sleep(10), delivered(Subs, Want, Until)
    end.

reads([N1 | _], Micros) ->
    Keys = 100000,
    ok = erpc:call(N1, mnesia_load, fill, [Keys, x], infinity),
    T0 = erlang:monotonic_time(microsecond),
    N = erpc:call(N1, mnesia_load, read_loop, [Keys, Micros], infinity),
    Elapsed = erlang:monotonic_time(microsecond) - T0,
    emit([{bench, point_read}, {readers, 1}, {ops, N}, {secs, Elapsed / 1.0e6},
          {ops_per_s, N * 1.0e6 / Elapsed}]).

sessions(Nodes = [N1 | _], Count) ->
    Workers = 256,
    Per = Count div Workers,
    %% Open: every client connects for the first time, the workers spread over the nodes.
    %% Take-over: every client connects again, to the next node.
    lists:foreach(
      fun(Round) ->
              T0 = erlang:monotonic_time(microsecond),
              Pids = [begin
                          Node = lists:nth((I + Round) rem 3 + 1, Nodes),
                          spawn(Node, mnesia_load, session_worker,
                                [self(), <<"client-">>, I * Per, Per, atom_to_binary(Node)])
                      end || I <- lists:seq(0, Workers - 1)],
              Lats = collect(Pids, []),
              Elapsed = erlang:monotonic_time(microsecond) - T0,
              What = case Round of 0 -> session_open; 1 -> session_takeover end,
              emit([{bench, What}, {writers, Workers} | stats(Lats, Elapsed)])
      end, [0, 1]),
    Words = erpc:call(N1, mnesia, table_info, [session, memory]),
    Size = erpc:call(N1, mnesia, table_info, [session, size]),
    Bytes = Words * erlang:system_info(wordsize),
    emit([{bench, session_memory}, {sessions, Size}, {bytes, Bytes}, {bytes_per_session, Bytes / Size}]).

routes(N1, Micros, Exact, Wild) ->
    route_mix(N1, Micros, Exact, Wild, harness, ""),
    %% The multi-tenant mix: 88% exact filters (`RouteMix::Tenants`).
    Total = Exact + Wild,
    route_mix(N1, Micros, Total * 88 div 100, Total - Total * 88 div 100, tenants, "_tenants").

route_mix(N1, Micros, Exact, Wild, Mix, Suffix) ->
    T0 = erlang:monotonic_time(microsecond),
    Owner = spawn(N1, mnesia_load, routes_owner, [self(), Exact, Wild, Mix]),
    Bytes = receive {routes, Owner, B} -> B end,
    Load = erlang:monotonic_time(microsecond) - T0,
    emit([{bench, list_to_atom("route_memory" ++ Suffix)}, {routes, Exact + Wild}, {bytes, Bytes},
          {bytes_per_route, Bytes / (Exact + Wild)}, {load_secs, Load / 1.0e6}]),
    T1 = erlang:monotonic_time(microsecond),
    {N, Found} = erpc:call(N1, mnesia_load, match_loop, [Micros, {Exact, Wild}, Mix], infinity),
    Elapsed = erlang:monotonic_time(microsecond) - T1,
    emit([{bench, list_to_atom("route_match" ++ Suffix)}, {routes, Exact + Wild}, {ops, N}, {found, Found},
          {ops_per_s, N * 1.0e6 / Elapsed}, {ns_per_match, Elapsed * 1000 / N}]),
    Owner ! stop.

collect([], Acc) -> Acc;
collect([P | Ps], Acc) ->
    receive {done, P, Lats} -> collect(Ps, Lats ++ Acc)
    after 600000 -> error({no_answer_from, P})
    end.

%% Operations per second and latency percentiles (µs) of one cell.
stats([], _Elapsed) -> [{ops, 0}];
stats(Lats, Elapsed) ->
    Sorted = list_to_tuple(lists:sort(Lats)),
    N = tuple_size(Sorted),
    P = fun(Q) -> element(max(1, min(N, round(Q * N))), Sorted) end,
    [{ops, N}, {secs, Elapsed / 1.0e6}, {ops_per_s, N * 1.0e6 / Elapsed},
     {p50_us, P(0.5)}, {p99_us, P(0.99)}, {max_us, element(N, Sorted)}].

emit(Fields) ->
    Body = lists:join(",", [["\"", atom_to_list(K), "\":", value(V)] || {K, V} <- Fields]),
    io:format("~s~n", [["{", Body, "}"]]).

value(V) when is_atom(V) -> ["\"", atom_to_list(V), "\""];
value(V) when is_integer(V) -> integer_to_list(V);
value(V) when is_float(V) -> io_lib:format("~.3f", [V]).
