%% The Mnesia side of mnema's peer benchmark (`benches/peers.rs`): the load that runs on
%% each Mnesia node. `mnesia_bench.escript` compiles this module and loads it on the
%% driver and on every peer node; the functions here run where they are called.
%%
%% Every function returns plain terms (integers, lists); the escript turns them into JSON.
-module(mnesia_load).
-export([write_worker/5, read_loop/2, fill/2, session_worker/5, routes_owner/4, match_loop/3,
         match/1, subscriber/1]).

-record(kv, {k, v}).
-record(session, {client_id, subscriptions, expiry_interval_s, owner, connected,
                  created_at_ms, updated_at_ms}).

now_us() -> erlang:monotonic_time(microsecond).

%% A closed-loop writer: one write of a distinct 8-byte key and a 256-byte value at a time
%% for `Micros`; sends `{done, self(), Latencies}` (µs) to `Parent`.
%% Durability `async`: `mnesia:transaction` (what EMQX runs; the log is written, not
%% fsync'd). `sync`: `mnesia:sync_transaction` and then `mnesia:sync_log()` on every
%% replica, so the write is on disk everywhere before the writer goes on.
write_worker(Parent, Id, Micros, Durability, Nodes) ->
    Deadline = now_us() + Micros,
    Value = binary:copy(<<16#ab>>, 256),
    Lats = write_loop(Id bsl 32, Deadline, Durability, Nodes, Value, []),
    Parent ! {done, self(), Lats}.

write_loop(Seq, Deadline, Durability, Nodes, Value, Acc) ->
    T0 = now_us(),
    case T0 >= Deadline of
        true -> Acc;
        false ->
            Rec = #kv{k = <<Seq:64>>, v = Value},
            ok = write(Durability, Rec, Nodes),
            write_loop(Seq + 1, Deadline, Durability, Nodes, Value, [now_us() - T0 | Acc])
    end.

write(async, Rec, _Nodes) ->
    {atomic, ok} = mnesia:transaction(fun() -> mnesia:write(Rec) end),
    ok;
write(sync, Rec, Nodes) ->
    {atomic, ok} = mnesia:sync_transaction(fun() -> mnesia:write(Rec) end),
    [ok = R || {ok, R} <- erpc:multicall(Nodes, mnesia, sync_log, [])],
    ok.

%% A subscriber of `kv`'s simple table events: counts them; answers `{count, From}` (after
%% the events queued before it) until `stop`.
subscriber(Parent) ->
    {ok, _} = mnesia:subscribe({table, kv, simple}),
    Parent ! {subscribed, self()},
    subscriber_loop(0).

subscriber_loop(N) ->
    receive
        {mnesia_table_event, _} -> subscriber_loop(N + 1);
        {count, From} -> From ! {count, self(), N}, subscriber_loop(N);
        stop -> ok
    end.

%% Writes keys `0..Keys-1` (dirty, for the reads below).
fill(Keys, _) ->
    Value = binary:copy(<<16#ab>>, 256),
    lists:foreach(fun(I) -> ok = mnesia:dirty_write(#kv{k = <<I:64>>, v = Value}) end,
                  lists:seq(0, Keys - 1)).

%% Point reads (`mnesia:dirty_read`) of keys `0..Keys-1`, one process, for `Micros`;
%% returns the number of reads.
read_loop(Keys, Micros) ->
    Deadline = now_us() + Micros,
    read_loop(0, Keys, Deadline, 0).

read_loop(I, Keys, Deadline, N) ->
    case N band 1023 =:= 0 andalso now_us() >= Deadline of
        true -> N;
        false ->
            [_] = mnesia:dirty_read(kv, <<(I rem Keys):64>>),
            read_loop(I + 7919, Keys, Deadline, N + 1)
    end.

%% A session worker: opens `Count` sessions (clients `Prefix ++ N`), each a transaction that
%% reads the session and writes it with `Owner` as owner: a creation the first time, a
%% take-over when another node opened it before. Sends latencies.
session_worker(Parent, Prefix, From, Count, Owner) ->
    Lats = session_loop(Prefix, From, From + Count, Owner, []),
    Parent ! {done, self(), Lats}.

session_loop(_Prefix, I, End, _Owner, Acc) when I >= End -> Acc;
session_loop(Prefix, I, End, Owner, Acc) ->
    T0 = now_us(),
    Client = iolist_to_binary([Prefix, integer_to_binary(I)]),
    Now = erlang:system_time(millisecond),
    {atomic, ok} = mnesia:transaction(fun() ->
        S = case mnesia:read(session, Client, write) of
                [Old] -> Old;
                [] -> #session{client_id = Client, subscriptions = #{}, created_at_ms = Now}
            end,
        mnesia:write(S#session{owner = Owner, connected = true, expiry_interval_s = 7200,
                               updated_at_ms = Now})
    end),
    session_loop(Prefix, I + 1, End, Owner, [now_us() - T0 | Acc]).

%% Routes as EMQX keeps them: a `route` bag table (filter -> destination, ram copies) and,
%% for wildcard filters, a trie in two ETS tables (edges `{Parent, Word} -> Child` and the
%% nodes that end a filter). The mixes of `benches/common/mod.rs` (`RouteMix`): `harness`,
%% `Exact` filters `d/<i>/t` and `Wild` wildcard ones, `w/<j>/+/x` and `w/<j>/#`
%% alternately; `tenants`, `Exact` device filters `t<T>/d<D>/up` over 1,000 tenants, then
%% one `t<T>/+/up` per tenant and device subtrees `t<T>/d<D>/#`.
%% Creates and fills the route tables, tells `Parent` `{routes, Bytes}` (what they hold),
%% and keeps the ETS tables alive until told `stop`.
routes_owner(Parent, Exact, Wild, Mix) ->
    {atomic, ok} = mnesia:clear_table(route),
    ok = make_routes(Exact, Wild, Mix),
    Parent ! {routes, self(), route_memory()},
    receive stop -> ok end.

make_routes(Exact, Wild, Mix) ->
    catch ets:delete(trie_edge),
    catch ets:delete(trie_end),
    ets:new(trie_edge, [named_table, public, set, {read_concurrency, true}]),
    ets:new(trie_end, [named_table, public, set, {read_concurrency, true}]),
    ets:insert(trie_edge, {next_id, 1}),
    load_routes(Exact, Wild, Mix).

-define(TENANTS, 1000).

filter(I, Exact, harness) when I < Exact -> iolist_to_binary(["d/", integer_to_binary(I), "/t"]);
filter(I, Exact, harness) when I rem 2 =:= 0 -> iolist_to_binary(["w/", integer_to_binary(I - Exact), "/+/x"]);
filter(I, Exact, harness) -> iolist_to_binary(["w/", integer_to_binary(I - Exact - 1), "/#"]);
filter(I, Exact, tenants) when I < Exact ->
    iolist_to_binary(["t", integer_to_binary(I rem ?TENANTS), "/d", integer_to_binary(I div ?TENANTS), "/up"]);
filter(I, Exact, tenants) when I - Exact < ?TENANTS ->
    iolist_to_binary(["t", integer_to_binary(I - Exact), "/+/up"]);
filter(I, Exact, tenants) ->
    K = I - Exact - ?TENANTS,
    iolist_to_binary(["t", integer_to_binary(K rem ?TENANTS), "/d", integer_to_binary(K div ?TENANTS), "/#"]).

load_routes(Exact, Wild, Mix) ->
    Dests = {'b0@127.0.0.1', 'b1@127.0.0.1', 'b2@127.0.0.1'},
    lists:foreach(
      fun(I) ->
              Filter = filter(I, Exact, Mix),
              ok = mnesia:dirty_write({route, Filter, element(I rem 3 + 1, Dests)}),
              case I < Exact of
                  true -> ok;
                  false -> trie_insert(Filter)
              end
      end, lists:seq(0, Exact + Wild - 1)),
    ok.

trie_insert(Filter) ->
    Words = binary:split(Filter, <<"/">>, [global]),
    Node = lists:foldl(
             fun(W, Parent) ->
                     case ets:lookup(trie_edge, {Parent, W}) of
                         [{_, Child}] -> Child;
                         [] ->
                             Child = ets:update_counter(trie_edge, next_id, 1),
                             ets:insert(trie_edge, {{Parent, W}, Child}),
                             Child
                     end
             end, 0, Words),
    ets:insert(trie_end, {Node, Filter}).

%% The destinations of every route matching `Topic`: the exact filter's, then the
%% wildcard filters found by walking the trie.
match(Topic) ->
    Exact = mnesia:dirty_read(route, Topic),
    Filters = walk(0, binary:split(Topic, <<"/">>, [global]), []),
    lists:foldl(fun(F, Acc) -> mnesia:dirty_read(route, F) ++ Acc end, Exact, Filters).

walk(Node, [], Acc) ->
    Acc1 = case ets:lookup(trie_end, Node) of
               [{_, F}] -> [F | Acc];
               [] -> Acc
           end,
    hash(Node, Acc1);
walk(Node, [W | Ws], Acc) ->
    Acc1 = hash(Node, Acc),
    Acc2 = case ets:lookup(trie_edge, {Node, <<"+">>}) of
               [{_, P}] -> walk(P, Ws, Acc1);
               [] -> Acc1
           end,
    case ets:lookup(trie_edge, {Node, W}) of
        [{_, C}] -> walk(C, Ws, Acc2);
        [] -> Acc2
    end.

hash(Node, Acc) ->
    case ets:lookup(trie_edge, {Node, <<"#">>}) of
        [{_, H}] ->
            case ets:lookup(trie_end, H) of
                [{_, F}] -> [F | Acc];
                [] -> Acc
            end;
        [] -> Acc
    end.

%% Matches the 4,096 topics of `Mix` (as `RouteMix::topics` makes them) for `Micros` on
%% one process; returns `{Matches, RoutesFound}`.
match_loop(Micros, {Exact, Wild}, Mix) ->
    Topics = list_to_tuple([topic(I, Exact, Wild, Mix) || I <- lists:seq(0, 4095)]),
    Deadline = now_us() + Micros,
    match_loop(0, Topics, Deadline, 0, 0).

match_loop(I, Topics, Deadline, N, Found) ->
    case N band 255 =:= 0 andalso now_us() >= Deadline of
        true -> {N, Found};
        false ->
            R = match(element(I + 1, Topics)),
            match_loop((I + 1) band 4095, Topics, Deadline, N + 1, Found + length(R))
    end.

topic(I, Exact, _Wild, tenants) ->
    Devices = max(1, Exact div ?TENANTS),
    iolist_to_binary(["t", integer_to_binary((I * 7919) rem ?TENANTS), "/d",
                      integer_to_binary((I * 104729) rem Devices), "/up"]);
topic(I, Exact, Wild, harness) ->
    case I rem 2 of
        0 -> iolist_to_binary(["d/", integer_to_binary((I * 104729) rem Exact), "/t"]);
        1 -> iolist_to_binary(["w/", integer_to_binary(((I * 7919) rem (Wild div 2)) * 2), "/y/x"])
    end.

%% Bytes held by the routes: the `route` table and the two trie tables.
route_memory() ->
    W = erlang:system_info(wordsize),
    (mnesia:table_info(route, memory) + ets:info(trie_edge, memory) + ets:info(trie_end, memory)) * W.
