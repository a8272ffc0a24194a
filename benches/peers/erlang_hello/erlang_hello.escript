#!/usr/bin/env escript
%% -*- erlang -*-
%%! +S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none -noshell
%%
%% The Erlang/OTP peer of Corral's side-by-side comparison (benches/compare.sh): gen_tcp and a
%% process per connection, the way an Erlang programmer writes a small HTTP/1.1 server
%% without a framework. The VM's own HTTP packet parser ({packet, http_bin}) reads the
%% request line and headers.
%%
%%   GET  /plaintext   "Hello, World!" (text/plain)
%%   GET  /json        {"message":"Hello, World!"} (a literal: OTP 25 has no JSON module)
%%   GET  /work?us=N   sleeps N µs rounded up to whole ms (Erlang timers count ms), then "ok"
%%   POST /echo        the request body back (Content-Length bodies)
%%
%% Usage: escript benches/peers/erlang_hello/erlang_hello.escript 127.0.0.1:8093
%%
%% The emulator flags above: one scheduler (+S 1:1), as Corral runs one worker in the
%% comparison; and no busy waiting (+sbwt none ...): a scheduler that runs out of work spins
%% for a while before it sleeps, and that spinning would count as server CPU per request in
%% /proc/PID/stat. Loopback addresses only.
-mode(compile).

-define(MAX_WORK_US, 10000000).

main([Addr]) ->
    {Ip, Port} = address(Addr),
    Opts = [binary, {packet, http_bin}, {active, false}, {reuseaddr, true},
            {nodelay, true}, {backlog, 4096}, {ip, Ip}],
    case gen_tcp:listen(Port, Opts) of
        {ok, Listen} ->
            ets:new(date, [named_table, public, {read_concurrency, true}]),
            update_date(),
            spawn_link(fun date_loop/0),
            io:format(standard_error, "erlang_hello: listening on ~s (~p scheduler(s))~n",
                      [Addr, erlang:system_info(schedulers_online)]),
            accept(Listen);
        {error, Reason} ->
            io:format(standard_error, "erlang_hello: cannot listen on ~s: ~p~n", [Addr, Reason]),
            halt(1)
    end;
main(_) ->
    io:format(standard_error, "usage: erlang_hello.escript ADDR   (e.g. 127.0.0.1:8093)~n", []),
    halt(2).

address(Addr) ->
    [Host, Port] = string:split(Addr, ":", trailing),
    {ok, Ip} = inet:parse_address(Host),
    case Ip of
        {127, _, _, _} -> {Ip, list_to_integer(Port)};
        _ ->
            io:format(standard_error, "erlang_hello: ~s is not a loopback address~n", [Addr]),
            halt(2)
    end.

accept(Listen) ->
    case gen_tcp:accept(Listen) of
        {ok, Sock} ->
            Pid = spawn(fun() -> receive go -> loop(Sock) end end),
            case gen_tcp:controlling_process(Sock, Pid) of
                ok -> Pid ! go;
                {error, _} -> exit(Pid, kill), gen_tcp:close(Sock)
            end;
        {error, _} -> ok
    end,
    accept(Listen).

%% One request: the request line, the headers, the body, the answer.
loop(Sock) ->
    case gen_tcp:recv(Sock, 0) of
        {ok, {http_request, Method, {abs_path, Target}, Version}} ->
            headers(Sock, {Method, Target, Version}, 0, Version =:= {1, 1});
        {ok, {http_error, _}} ->
            gen_tcp:send(Sock, response(<<"400 Bad Request">>, <<"text/plain">>, <<>>, false)),
            gen_tcp:close(Sock);
        {ok, _} ->
            gen_tcp:close(Sock);
        {error, _} ->
            gen_tcp:close(Sock)
    end.

headers(Sock, Request, Length, KeepAlive) ->
    case gen_tcp:recv(Sock, 0) of
        {ok, {http_header, _, 'Content-Length', _, Value}} ->
            headers(Sock, Request, binary_to_integer(Value), KeepAlive);
        {ok, {http_header, _, 'Connection', _, Value}} ->
            headers(Sock, Request, Length, keep_alive(string:lowercase(Value), KeepAlive));
        {ok, {http_header, _, _, _, _}} ->
            headers(Sock, Request, Length, KeepAlive);
        {ok, http_eoh} ->
            case body(Sock, Length) of
                {ok, Body} ->
                    {Status, Type, Out} = route(Request, Body),
                    gen_tcp:send(Sock, response(Status, Type, Out, KeepAlive)),
                    case KeepAlive of
                        true -> loop(Sock);
                        false -> gen_tcp:close(Sock)
                    end;
                {error, _} ->
                    gen_tcp:close(Sock)
            end;
        _ ->
            gen_tcp:close(Sock)
    end.

keep_alive(<<"close">>, _) -> false;
keep_alive(<<"keep-alive">>, _) -> true;
keep_alive(_, KeepAlive) -> KeepAlive.

body(_Sock, 0) ->
    {ok, <<>>};
body(Sock, Length) ->
    ok = inet:setopts(Sock, [{packet, raw}]),
    Result = gen_tcp:recv(Sock, Length),
    ok = inet:setopts(Sock, [{packet, http_bin}]),
    Result.

route({'GET', <<"/plaintext">>, _}, _) ->
    {<<"200 OK">>, <<"text/plain">>, <<"Hello, World!">>};
route({'GET', <<"/json">>, _}, _) ->
    {<<"200 OK">>, <<"application/json">>, <<"{\"message\":\"Hello, World!\"}">>};
route({'GET', <<"/work?", Query/binary>>, _}, _) ->
    case micros(Query) of
        {ok, Us} ->
            timer:sleep((Us + 999) div 1000),
            {<<"200 OK">>, <<"text/plain">>, <<"ok">>};
        error ->
            {<<"400 Bad Request">>, <<"text/plain">>, <<"us must be at most 10000000">>}
    end;
route({'POST', <<"/echo">>, _}, Body) ->
    {<<"200 OK">>, <<"application/octet-stream">>, Body};
route(_, _) ->
    {<<"404 Not Found">>, <<"text/plain">>, <<"Not Found">>}.

micros(Query) ->
    case [V || <<"us=", V/binary>> <- binary:split(Query, <<"&">>, [global])] of
        [Value | _] ->
            try binary_to_integer(Value) of
                Us when Us >= 0, Us =< ?MAX_WORK_US -> {ok, Us};
                _ -> error
            catch
                error:badarg -> error
            end;
        [] ->
            error
    end.

response(Status, Type, Body, KeepAlive) ->
    [<<"HTTP/1.1 ">>, Status, <<"\r\nServer: E\r\nDate: ">>, ets:lookup_element(date, date, 2),
     <<"\r\nContent-Type: ">>, Type,
     <<"\r\nContent-Length: ">>, integer_to_binary(byte_size(Body)),
     case KeepAlive of
         true -> <<"\r\n\r\n">>;
         false -> <<"\r\nConnection: close\r\n\r\n">>
     end,
     Body].

%% The Date header, formatted once a second rather than per request.
date_loop() ->
    timer:sleep(1000),
    update_date(),
    date_loop().

update_date() ->
    {{Y, Mo, D} = Day, {H, Mi, S}} = calendar:universal_time(),
    Week = element(calendar:day_of_the_week(Day),
                   {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    Month = element(Mo, {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}),
    Date = io_lib:format("~s, ~2..0w ~s ~4w ~2..0w:~2..0w:~2..0w GMT",
                         [Week, D, Month, Y, H, Mi, S]),
    ets:insert(date, {date, iolist_to_binary(Date)}).
