-- skynet.socketchannel over real loopback TCP, against servers this service runs itself:
-- order mode (sequential and concurrent requests, pushes, multi-part replies and requests,
-- a failing response function, a peer closing an idle connection), session mode (replies
-- in reverse order, multi-part and error replies), auth on every connect, pending requests
-- failing with socketchannel.error when the server drops the connection and the next
-- request reconnecting, backups, changehost, connect retrying, close.
local skynet = require "skynet"
local socket = require "skynet.socket"
local socketchannel = require "skynet.socketchannel"
local check = require "check"

local HOST = "127.0.0.1"

-- A server on a free port: handler(fd, n, server) serves its n-th connection, which is
-- closed when the handler returns.
local function serve(handler)
	local id, _, port = socket.listen(HOST, 0)
	local server = { id = id, port = port, accepted = 0, first = {} }
	socket.start(id, function(fd)
		server.accepted = server.accepted + 1
		local n = server.accepted
		skynet.fork(function()
			if socket.start(fd) then
				local ok, err = pcall(handler, fd, n, server)
				if not ok then
					print("FAIL server handler: " .. tostring(err))
				end
			end
			socket.close(fd)
		end)
	end)
	return server
end

-- The order-mode server: a line in, a line out, "<prefix><line>" unless it is a command.
local function line_server(prefix)
	return serve(function(fd, n, server)
		while true do
			local line = socket.readline(fd)
			if not line then
				return
			end
			server.first[n] = server.first[n] or line
			local cmd, arg = line:match("^(%S+)%s*(.*)$")
			if cmd == "AUTH" then
				server.auths = (server.auths or 0) + 1
				socket.write(fd, arg == "secret" and "OK\n" or "NO\n")
			elseif cmd == "HOLD" then
				-- never answered: the request stays pending
			elseif cmd == "CLOSE" then
				return -- drop the connection without an answer
			elseif cmd == "BYE" then
				socket.write(fd, "bye\n")
				return
			elseif cmd == "PUSH" then
				socket.write(fd, "pushed " .. arg .. "\n")
			elseif cmd == "MULTI" then
				socket.write(fd, "+a\n+b\n.c\n")
			else
				socket.write(fd, prefix .. line .. "\n")
			end
		end
	end)
end

-- The session-mode server: "<session> <payload>" lines, answered "<session> <flag> <data>"
-- (flag "+": more parts follow, ".": the last part, "!": an error). Plain requests are held
-- until 5 have come, then answered newest first.
local function session_server()
	return serve(function(fd, n, server)
		local held = {}
		while true do
			local line = socket.readline(fd)
			if not line then
				return
			end
			local s, payload = line:match("^(%d+) (.*)$")
			if payload == "CLOSE" then
				return
			elseif payload == "MULTI" then
				socket.write(fd, s .. " + a\n" .. s .. " + b\n" .. s .. " . c\n")
			elseif payload == "FAIL" then
				socket.write(fd, s .. " ! nope\n")
			else
				held[#held + 1] = { s, payload }
				if #held == 5 then
					for i = 5, 1, -1 do
						socket.write(fd, held[i][1] .. " . re:" .. held[i][2] .. "\n")
					end
					held = {}
				end
			end
		end
	end)
end

-- Runs f(1) .. f(n) in forks and waits until all have returned; their errors are returned.
local function parallel(n, f)
	local left, token, errors = n, {}, {}
	for i = 1, n do
		skynet.fork(function()
			local ok, err = pcall(f, i)
			if not ok then
				errors[i] = err
			end
			left = left - 1
			if left == 0 then
				skynet.wakeup(token)
			end
		end)
	end
	skynet.wait(token)
	return errors
end

-- Polls (every 10 cs, at most `ticks` cs) until cond() holds.
local function eventually(cond, ticks)
	for _ = 1, ticks // 10 do
		if cond() then
			return true
		end
		skynet.sleep(10)
	end
	return cond() and true or false
end

local function line_reply(sock)
	return true, sock:readline("\n")
end

local function is_socket_error(err)
	return err == socketchannel.error
end

skynet.start(function()
	-- a hung channel must not hang the node
	skynet.timeout(3000, function()
		check.ok("the suite finished in time", false)
		check.done()
	end)

	check.eq("socketchannel.error prints as skynet's", tostring(socketchannel.error),
		"[Error: socket]")

	local one = line_server("echo ")
	local two = line_server("two ")

	-----------------------------------------------------------------------------------------
	-- order mode
	local ch = socketchannel.channel { host = HOST, port = one.port }
	local all = true
	for i = 1, 10 do
		local r = ch:request("ping " .. i .. "\n", line_reply)
		if r ~= "echo ping " .. i then
			all = false
			print("FAIL sequential request " .. i .. ": " .. tostring(r))
		end
	end
	check.ok("order mode: 10 sequential requests are answered", all)
	check.eq("over one connection", one.accepted, 1)

	local got = {}
	local errors = parallel(10, function(i)
		got[i] = ch:request("job " .. i .. "\n", line_reply)
	end)
	local right = next(errors) == nil
	for i = 1, 10 do
		right = right and got[i] == "echo job " .. i
	end
	check.ok("order mode: 10 concurrent requests each get their own reply", right,
		tostring(next(errors) and errors[next(errors)]))

	check.eq("a request without a response function returns at once",
		select("#", ch:request("PUSH x\n")), 0)
	check.eq("response() reads a message the server pushed", ch:response(line_reply), "pushed x")

	check.values("a reply in parts comes as an array", table.pack(table.unpack(
		ch:request("MULTI\n", function(sock)
			local l = sock:readline()
			return true, l:sub(2), l:sub(1, 1) == "+"
		end))), table.pack("a", "b", "c"))

	check.eq("a request in parts (padding) is sent whole",
		ch:request("part1 ", line_reply, { "part2 ", "part3\n" }), "echo part1 part2 part3")

	check.raises("a response function returning false raises its message", "bad reply: echo x",
		ch.request, ch, "x\n", function(sock)
			return false, "bad reply: " .. sock:readline()
		end)
	check.eq("and the connection stays", ch:request("y\n", line_reply), "echo y")
	check.eq("(still one connection)", one.accepted, 1)

	-- the server closes while nothing is pending: the next request just reconnects
	check.eq("a reply before the server closes", ch:request("BYE\n", line_reply), "bye")
	skynet.sleep(20)
	local ok, r = pcall(ch.request, ch, "after bye\n", line_reply)
	check.ok("after an idle close the next request reconnects", ok and r == "echo after bye",
		tostring(r))
	check.eq("(a second connection)", one.accepted, 2)

	-----------------------------------------------------------------------------------------
	-- auth, a dropped connection, reconnection
	local auth_calls = 0
	local ach = socketchannel.channel {
		host = HOST,
		port = one.port,
		auth = function(c)
			auth_calls = auth_calls + 1
			local reply = c:request("AUTH secret\n", line_reply)
			assert(reply == "OK", reply)
		end,
	}
	check.eq("a request on an authenticated channel", ach:request("hello\n", line_reply),
		"echo hello")
	local conn = one.accepted
	check.eq("auth ran on connect", auth_calls, 1)
	check.eq("before any request", one.first[conn], "AUTH secret")

	local results = {}
	parallel(3, function(i)
		local req = ({ "HOLD\n", "HOLD\n", "CLOSE\n" })[i]
		results[i] = table.pack(pcall(ach.request, ach, req, line_reply))
	end)
	local failed = true
	for i = 1, 3 do
		failed = failed and results[i][1] == false and is_socket_error(results[i][2])
	end
	check.ok("the server dropping the connection fails every pending request with "
		.. "socketchannel.error", failed, results[1][2])

	check.eq("the next request reconnects", ach:request("again\n", line_reply), "echo again")
	check.ok("(to a new connection)", one.accepted == conn + 1, one.accepted)
	check.eq("auth ran again", auth_calls, 2)
	check.eq("before the request", one.first[one.accepted], "AUTH secret")

	local bad = socketchannel.channel {
		host = HOST,
		port = one.port,
		auth = function(c)
			local reply = c:request("AUTH wrong\n", line_reply)
			assert(reply == "OK", "refused: " .. reply)
		end,
	}
	ok, r = pcall(bad.request, bad, "x\n", line_reply)
	check.ok("a failing auth fails the request with socketchannel.error", not ok
		and is_socket_error(r), r)

	-----------------------------------------------------------------------------------------
	-- session mode
	local ss = session_server()
	local sch = socketchannel.channel {
		host = HOST,
		port = ss.port,
		nodelay = true,
		response = function(sock)
			local line = sock:readline()
			local s, flag, data = line:match("^(%d+) (%S) (.*)$")
			return tonumber(s), flag ~= "!", data, flag == "+"
		end,
	}
	local order = {}
	got = {}
	errors = parallel(5, function(i)
		got[i] = sch:request(i .. " p" .. i .. "\n", i)
		order[#order + 1] = i
	end)
	right = next(errors) == nil
	for i = 1, 5 do
		right = right and got[i] == "re:p" .. i
	end
	check.ok("session mode: replies in reverse order reach their callers", right,
		tostring(next(errors) and errors[next(errors)]))
	check.eq("(answered newest first)", table.concat(order, ","), "5,4,3,2,1")

	check.values("session mode: a reply in parts comes as an array",
		table.pack(table.unpack(sch:request("6 MULTI\n", 6))), table.pack("a", "b", "c"))
	check.raises("session mode: an error reply raises its data", "nope",
		sch.request, sch, "7 FAIL\n", 7)

	results = {}
	parallel(3, function(i)
		local req = ({ "8 held\n", "9 held\n", "10 CLOSE\n" })[i]
		results[i] = table.pack(pcall(sch.request, sch, req, 7 + i))
	end)
	failed = true
	for i = 1, 3 do
		failed = failed and results[i][1] == false and is_socket_error(results[i][2])
	end
	check.ok("session mode: a dropped connection fails the pending sessions", failed,
		results[1][2])
	got = {}
	errors = parallel(5, function(i)
		got[i] = sch:request((10 + i) .. " q" .. i .. "\n", 10 + i)
	end)
	right = next(errors) == nil
	for i = 1, 5 do
		right = right and got[i] == "re:q" .. i
	end
	check.ok("session mode: the next requests reconnect", right and ss.accepted == 2,
		tostring(next(errors) and errors[next(errors)]) .. " accepted " .. ss.accepted)

	-----------------------------------------------------------------------------------------
	-- changehost, backups, connect
	local pending
	skynet.fork(function()
		pending = table.pack(pcall(ch.request, ch, "HOLD\n", line_reply))
	end)
	skynet.sleep(5)
	ch:changehost(HOST, two.port)
	check.ok("changehost fails what waits on the old connection", eventually(function()
		return pending ~= nil
	end, 100) and pending[1] == false and is_socket_error(pending[2]), pending and pending[2])
	check.eq("the next request goes to the new host", ch:request("x\n", line_reply), "two x")
	check.eq("(one connection to it)", two.accepted, 1)

	local dead, _, dead_port = socket.listen(HOST, 0)
	socket.close(dead)

	local fch = socketchannel.channel { host = HOST, port = dead_port }
	ok, r = pcall(fch.connect, fch, true)
	check.ok("connect(true) to a refused port raises socketchannel.error", not ok
		and is_socket_error(r), r)
	ok, r = pcall(fch.request, fch, "x\n", line_reply)
	check.ok("and so does a request", not ok and is_socket_error(r), r)

	local bch = socketchannel.channel {
		host = HOST,
		port = dead_port,
		backup = { { host = HOST, port = two.port } },
	}
	check.eq("a refused host falls back to a backup", bch:request("b\n", line_reply), "two b")

	local connected
	local rch = socketchannel.channel { host = HOST, port = dead_port }
	skynet.fork(function()
		connected = table.pack(pcall(rch.connect, rch))
	end)
	skynet.sleep(50)
	check.eq("connect() keeps trying a refused host", connected, nil)
	rch:changehost(HOST, one.port)
	check.ok("and connects once the host answers", eventually(function()
		return connected ~= nil
	end, 300) and connected[1] == true and connected[2] == true,
		connected and tostring(connected[2]))
	check.eq("(the channel works)", rch:request("r\n", line_reply), "echo r")
	rch:close()

	local kch = socketchannel.channel { host = HOST, port = dead_port }
	local gave_up
	skynet.fork(function()
		gave_up = table.pack(pcall(kch.connect, kch))
	end)
	skynet.sleep(30)
	kch:close()
	check.ok("close ends a connect that keeps trying", eventually(function()
		return gave_up ~= nil
	end, 300) and gave_up[1] == true and gave_up[2] == false, gave_up and tostring(gave_up[2]))

	-----------------------------------------------------------------------------------------
	-- close
	pending = nil
	skynet.fork(function()
		pending = table.pack(pcall(ch.request, ch, "HOLD\n", line_reply))
	end)
	skynet.sleep(5)
	ch:close()
	check.ok("close fails the pending requests with socketchannel.error", eventually(function()
		return pending ~= nil
	end, 100) and pending[1] == false and is_socket_error(pending[2]), pending and pending[2])
	check.raises("a request on a closed channel raises", "closed", ch.request, ch, "x\n",
		line_reply)
	check.eq("connect opens it again", ch:connect(true), true)
	check.eq("(and it works)", ch:request("z\n", line_reply), "two z")
	ch:close()
	ach:close()
	sch:close()
	bch:close()

	check.done()
end)
