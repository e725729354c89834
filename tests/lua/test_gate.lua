-- skynet's gate over real loopback TCP: netpack framing (in the node, on synthetic socket
-- events), then this service as the watchdog of a gate on port 0 with an agent
-- (gate_agent) per client: framed echo, packets merged and split every way, 0 and 65535
-- byte packets, a half-sent 64 KiB packet, 50 concurrent clients, kick, quit, accept mode,
-- maxclient and closing the listener.
local skynet = require "skynet"
local socket = require "skynet.socket"
local netpack = require "skynet.netpack"
local driver = require "skynet.socketdriver"
local check = require "check"

local spack = string.pack

---------------------------------------------------------------------------------------------
-- the watchdog side: what the gates tell us

local gate
local mode = "agent" -- how SOCKET.open takes the next client: "agent", "accept" or "none"
local opened = {} -- fds in the order the gates announced them
local addr_of = {}
local closed = {} -- fd -> true once "close" came
local errors = {} -- fd -> reason
local data_of = {} -- fd -> packets that came as "data" (accept mode)
local agents = {} -- fd -> agent
local live_agents = 0

local function close_agent(fd)
	local agent = agents[fd]
	agents[fd] = nil
	if agent then
		live_agents = live_agents - 1
		skynet.call(gate, "lua", "kick", fd)
		skynet.send(agent, "lua", "disconnect")
	end
end

local SOCKET = {}

function SOCKET.open(fd, addr)
	opened[#opened + 1] = fd
	addr_of[fd] = addr
	if mode == "accept" then
		data_of[fd] = {}
		skynet.call(gate, "lua", "accept", fd)
		return
	elseif mode == "none" then
		return
	end
	local agent = skynet.newservice("gate_agent")
	agents[fd] = agent
	live_agents = live_agents + 1
	local ok, forwarded = pcall(skynet.call, agent, "lua", "start",
		{ gate = gate, client = fd, watchdog = skynet.self() })
	if not (ok and forwarded) then
		print("FAIL an agent could not take its client: " .. tostring(forwarded))
		check.failed = check.failed + 1
	end
end

function SOCKET.close(fd)
	closed[fd] = true
	close_agent(fd)
end

function SOCKET.error(fd, reason)
	errors[fd] = reason
	close_agent(fd)
end

function SOCKET.warning(fd, size)
	skynet.error("test_gate: warning", fd, size)
end

function SOCKET.data(fd, msg)
	local list = data_of[fd]
	list[#list + 1] = msg
end

---------------------------------------------------------------------------------------------
-- the client side

local port

local function wait_until(pred, ticks)
	for _ = 1, ticks or 500 do
		if pred() then
			return true
		end
		skynet.sleep(1)
	end
	return pred() and true or false
end

-- A connection to the gate on `p` (default: the main one) and the fd the gate gave it.
local function connect(p)
	local n = #opened
	local c = assert(socket.open("127.0.0.1", p or port))
	wait_until(function() return #opened > n end)
	return c, opened[n + 1]
end

local function send(c, text)
	socket.write(c, netpack.pack(text))
end

-- One packet, or false when the connection closed first.
local function receive(c)
	local header = socket.read(c, 2)
	if not header then
		return false
	end
	local size = socket.header(header)
	if size == 0 then
		return ""
	end
	return socket.read(c, size) or false
end

---------------------------------------------------------------------------------------------

-- netpack.filter on PTYPE_SOCKET bodies made here (our driver's unpack takes a string too)
local function netpack_checks()
	local function event(t, id, ud, payload)
		return spack("<I4i4i4", t, id, ud) .. (payload or "")
	end
	local function data(id, bytes)
		return event(1, id, #bytes, bytes)
	end
	local q
	local function filter(msg)
		local r = table.pack(netpack.filter(q, msg))
		q = r[1]
		return table.unpack(r, 2, r.n)
	end

	local framed, size = netpack.pack("hello")
	check.ok("pack frames with a big-endian length", framed == "\0\5hello" and size == 7,
		string.format("%q %s", framed, tostring(size)))
	check.raises("pack refuses 65536 bytes", "Invalid size", netpack.pack, string.rep("x", 65536))
	check.eq("pack takes 65535 bytes", #netpack.pack(string.rep("x", 65535)), 65537)

	local t, fd, msg, sz = filter(data(7, "\0\5hello"))
	check.ok("one packet is data", t == "data" and fd == 7 and msg == "hello" and sz == 5)
	check.eq("half a header is nothing yet", filter(data(7, "\0")), nil)
	check.eq("the rest of the header and part of the body neither", filter(data(7, "\3ab")), nil)
	t, fd, msg = filter(data(7, "c"))
	check.ok("the last byte completes it", t == "data" and msg == "abc", tostring(msg))

	t = filter(data(8, "\0\1a\0\0\0\2bc\0"))
	local got = {}
	for f, m, s in netpack.pop, q do
		got[#got + 1] = string.format("%d:%s:%d", f, m, s)
	end
	check.ok("several packets are more, popped in order", t == "more"
		and table.concat(got, ",") == "8:a:1,8::0,8:bc:2", table.concat(got, ","))
	t, fd, msg = filter(data(8, "\1z"))
	check.ok("a header split after more", t == "data" and msg == "z", tostring(msg))

	t, fd, msg, sz = filter(data(9, "\0\0"))
	check.ok("a 0 byte packet is data too", t == "data" and msg == "" and sz == 0)

	check.eq("a header announcing 65535 bytes waits", filter(data(10, "\255\255partial")), nil)
	t, fd = filter(event(3, 10, 0))
	check.ok("close", t == "close" and fd == 10)
	t, fd, msg = filter(data(10, "\0\5fresh"))
	check.ok("close dropped the half packet", t == "data" and msg == "fresh", tostring(msg))
	filter(data(11, "\0\9abc"))
	t, fd, msg = filter(event(5, 11, 0, "boom"))
	check.ok("error, with its reason", t == "error" and fd == 11 and msg == "boom")
	t, fd, msg = filter(data(11, "\0\2ok"))
	check.ok("error dropped the half packet", t == "data" and msg == "ok", tostring(msg))

	t, fd, msg = filter(event(4, 1, 42, "127.0.0.1:5000"))
	check.ok("accept is open with the new fd", t == "open" and fd == 42 and msg == "127.0.0.1:5000")
	t, fd, sz = filter(event(7, 42, 1024))
	check.ok("warning", t == "warning" and fd == 42 and sz == 1024)
	check.eq("connect is nothing", filter(event(2, 42, 0, "127.0.0.1:5000")), nil)

	filter(data(12, "\0\5ab"))
	filter(data(13, "\0\1a\0\1b"))
	netpack.clear(q)
	check.eq("clear empties the queue", netpack.pop(q), nil)
	t, fd, msg = filter(data(12, "\0\2cd"))
	check.ok("and drops half packets", t == "data" and msg == "cd", tostring(msg))
	check.eq("tostring of a string packet", netpack.tostring("abc", 3), "abc")
end

skynet.start(function()
	netpack_checks()

	skynet.dispatch("lua", function(_, _, cmd, sub, ...)
		if cmd == "socket" then
			SOCKET[sub](...)
		elseif cmd == "close" then
			-- an agent's client said quit
			close_agent(sub)
		end
	end)

	gate = skynet.newservice("gate")
	local ip
	-- no address: the gate's default, loopback
	ip, port = skynet.call(gate, "lua", "open", { port = 0, maxclient = 100, nodelay = true,
		backlog = 128 })
	check.ok("open on port 0 returns the bound address", ip == "127.0.0.1"
		and math.type(port) == "integer" and port > 0, tostring(ip) .. ":" .. tostring(port))

	-- framed echo through an agent
	local c, fd = connect()
	check.ok("the watchdog hears open with the client's address", fd ~= nil
		and string.match(tostring(addr_of[fd]), "^127%.0%.0%.1:%d+$") ~= nil, tostring(addr_of[fd]))
	send(c, "echo hello")
	check.eq("echo through the agent", receive(c), "echo hello")
	send(c, "time")
	local t = tonumber(receive(c))
	check.ok("time through the agent", t and math.abs(t - skynet.time()) < 5, tostring(t))

	-- 3 packets in one write
	socket.write(c, netpack.pack("echo a") .. netpack.pack("echo b") .. netpack.pack("echo c"))
	local three = { receive(c), receive(c), receive(c) }
	check.eq("3 packets in one write", table.concat(three, ","), "echo a,echo b,echo c")

	-- a packet a byte at a time (each its own DATA event, as far as TCP lets us), header
	-- included
	driver.nodelay(c)
	local frame = netpack.pack("echo split")
	for i = 1, #frame do
		socket.write(c, string.sub(frame, i, i))
		skynet.sleep(1)
	end
	check.eq("a packet in 1 byte writes", receive(c), "echo split")
	-- a packet's end and the next one's start in one write
	local f1, f2 = netpack.pack("echo one"), netpack.pack("echo two")
	local both = f1 .. f2
	socket.write(c, string.sub(both, 1, #f1 + 1))
	skynet.sleep(2)
	socket.write(c, string.sub(both, #f1 + 2))
	check.eq("packets split across writes (1)", receive(c), "echo one")
	check.eq("packets split across writes (2)", receive(c), "echo two")

	-- the smallest and the largest packets
	socket.write(c, "\0\0")
	check.eq("a 0 byte packet reaches the agent", receive(c), "empty")
	local big = "echo " .. string.rep("x", 65530)
	socket.write(c, netpack.pack(big) .. netpack.pack("echo after"))
	local back = receive(c)
	check.ok("a 65535 byte packet", back == big, back and #back)
	check.eq("and the packet after it", receive(c), "echo after")

	socket.close(c)
	check.ok("the watchdog hears close", wait_until(function() return closed[fd] end))
	check.eq("and the agent was ended", agents[fd], nil)

	-- a header announcing 64 KiB, a few bytes, then the client closes
	local c2, fd2 = connect()
	socket.write(c2, "\255\255only a little")
	socket.close(c2)
	check.ok("a half-sent 64 KiB packet then close: the watchdog hears close",
		wait_until(function() return closed[fd2] end))
	check.eq("and no error", errors[fd2], nil)
	local c3 = connect()
	send(c3, "echo still here")
	check.eq("the gate carries on", receive(c3), "echo still here")
	socket.close(c3)

	-- 50 concurrent clients
	local answered, finished, waiter = 0, 0, coroutine.running()
	local before = #opened
	for i = 1, 50 do
		skynet.fork(function()
			local cc = socket.open("127.0.0.1", port)
			if cc then
				send(cc, "echo client " .. i)
				if receive(cc) == "echo client " .. i then
					answered = answered + 1
				end
				socket.close(cc)
			end
			finished = finished + 1
			if finished == 50 then
				skynet.wakeup(waiter)
			end
		end)
	end
	skynet.wait(waiter)
	check.eq("50 concurrent clients are each answered", answered, 50)
	local all_closed = wait_until(function()
		if #opened < before + 50 then
			return false
		end
		for i = before + 1, before + 50 do
			if not closed[opened[i]] then
				return false
			end
		end
		return true
	end, 2000)
	check.ok("the watchdog hears the 50 closes", all_closed, #opened - before)
	check.eq("every agent ended", live_agents, 0)

	-- kick from the watchdog closes the client
	local c4, fd4 = connect()
	send(c4, "echo before kick")
	check.eq("echo before the kick", receive(c4), "echo before kick")
	close_agent(fd4)
	check.eq("a kicked client reads the close", receive(c4), false)
	check.ok("the watchdog hears close after a kick", wait_until(function() return closed[fd4] end))
	socket.close(c4)

	-- quit: the agent answers, then has the watchdog close the client
	local c5, fd5 = connect()
	send(c5, "quit")
	check.eq("quit is answered", receive(c5), "bye")
	check.eq("then the client is closed", receive(c5), false)
	check.ok("and the watchdog hears close", wait_until(function() return closed[fd5] end))
	socket.close(c5)

	-- accept: the packets come to the watchdog as "data"
	mode = "accept"
	local c6, fd6 = connect()
	socket.write(c6, netpack.pack("raw one") .. netpack.pack("raw two"))
	local got = wait_until(function() return data_of[fd6] and #data_of[fd6] == 2 end)
	check.ok("accept sends packets to the watchdog as data", got
		and data_of[fd6][1] == "raw one" and data_of[fd6][2] == "raw two")
	skynet.call(gate, "lua", "kick", fd6)
	check.eq("kick through the gate closes the client", receive(c6), false)
	check.ok("the watchdog hears that close", wait_until(function() return closed[fd6] end))
	socket.close(c6)

	-- maxclient: a second gate taking 1 client at a time (left unread: mode "none")
	mode = "none"
	local gate2 = skynet.newservice("gate")
	local _, port2 = skynet.call(gate2, "lua", "open", { address = "127.0.0.1", port = 0,
		maxclient = 1 })
	local first, first_fd = connect(port2)
	check.ok("the first client of a 1-client gate is open", first_fd ~= nil)
	local n = #opened
	local second = assert(socket.open("127.0.0.1", port2))
	check.eq("the second is closed at once", socket.read(second, 1), false)
	socket.close(second)
	check.eq("and not announced", #opened, n)
	skynet.call(gate2, "lua", "kick", first_fd)
	check.ok("kicking the first frees its place", wait_until(function() return closed[first_fd] end))
	socket.close(first)
	local third, third_fd = connect(port2)
	check.ok("so another client is taken", third_fd ~= nil and third_fd ~= first_fd)
	skynet.call(gate2, "lua", "kick", third_fd)
	socket.close(third)

	-- close: the listener goes
	skynet.call(gate2, "lua", "close")
	local refused = wait_until(function()
		local s = socket.open("127.0.0.1", port2)
		if s then
			socket.close(s)
			return false
		end
		return true
	end, 100)
	check.ok("close stops listening", refused)

	check.done()
end)
