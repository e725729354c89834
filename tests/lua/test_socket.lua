-- skynet.socket over real loopback TCP: listen, accept, echo with 100 concurrent clients,
-- reads across fragments, readall after the peer closed, ownership transfer between
-- services, clear errors, netstat.
local skynet = require "skynet"
local socket = require "skynet.socket"
local check = require "check"

local handoff -- where the listener sends connections marked for transfer

-- The echo side: every line comes back; a line "HANDOFF" hands the connection over.
local function serve(id)
	assert(socket.start(id))
	while true do
		local line = socket.readline(id)
		if not line then
			break
		end
		if line == "HANDOFF" then
			socket.abandon(id)
			skynet.call(handoff, "lua", "TAKE", id)
			return
		elseif line == "READ5" then
			-- a sized read across fragments
			socket.write(id, "got " .. socket.read(id, 5) .. "\n")
		else
			socket.write(id, line .. "\n")
		end
	end
	socket.close(id)
end

skynet.start(function()
	-- a backlog for 100 clients connecting at once
	local listener, ip, port = socket.listen("127.0.0.1", 0, 128)
	check.ok("listen returns id, ip and a bound port", listener and ip == "127.0.0.1" and port > 0,
		tostring(ip) .. ":" .. tostring(port))
	socket.start(listener, function(id, addr)
		skynet.fork(serve, id)
	end)

	-- 100 clients at once, each with its own line
	local answered, finished, waiter = 0, 0, coroutine.running()
	for i = 1, 100 do
		skynet.fork(function()
			local c = assert(socket.open("127.0.0.1", port))
			socket.write(c, "ping " .. i .. "\n")
			if socket.readline(c) == "ping " .. i then
				answered = answered + 1
			end
			socket.close(c)
			finished = finished + 1
			if finished == 100 then
				-- once: the waiter's token is its coroutine, which later waits on sockets too
				skynet.wakeup(waiter)
			end
		end)
	end
	skynet.wait(waiter)
	check.eq("100 concurrent clients are each echoed", answered, 100)

	-- fragments: lines and a sized read split over several writes
	local c = assert(socket.open("127.0.0.1:" .. port))
	socket.write(c, "hel")
	skynet.sleep(2)
	socket.write(c, "lo\nwor")
	skynet.sleep(2)
	socket.write(c, "ld\nREAD5\nab")
	skynet.sleep(2)
	socket.write(c, "cde")
	check.eq("readline across fragments (1)", socket.readline(c), "hello")
	check.eq("readline across fragments (2)", socket.readline(c), "world")
	check.eq("read of a size across fragments", socket.readline(c), "got abcde")
	socket.close(c)

	-- the peer closes: what it sent is still read, then false
	local got
	local l2, _, port2 = socket.listen("127.0.0.1", 0)
	socket.start(l2, function(id)
		skynet.fork(function()
			socket.start(id)
			got = socket.readall(id)
			socket.close(id)
		end)
	end)
	local c2 = assert(socket.open("127.0.0.1", port2))
	socket.write(c2, "last words")
	socket.close(c2)
	skynet.sleep(10)
	check.eq("readall returns what the peer sent before closing", got, "last words")

	-- ownership transfer: the listener's service abandons, another service starts it
	handoff = skynet.newservice("socket_taker")
	local c3 = assert(socket.open("127.0.0.1", port))
	socket.write(c3, "HANDOFF\n")
	-- what the first service had buffered is dropped with the socket (as in skynet): send the
	-- taker's line once the hand-over is done
	skynet.sleep(10)
	socket.write(c3, "for the taker\n")
	check.eq("another service took the socket over", socket.readline(c3), "taken: for the taker")
	local rest, left = socket.read(c3)
	check.ok("and closed it", rest == false and left == "", tostring(rest))
	socket.close(c3)

	-- errors
	local closed_listener, _, closed_port = socket.listen("127.0.0.1", 0)
	socket.close(closed_listener)
	local none, err = socket.open("127.0.0.1", closed_port)
	check.ok("a refused connection is nil and a reason", none == nil
		and tostring(err):lower():find("refused", 1, true), tostring(err))
	check.raises("listening on a taken port raises", "Listen error", socket.listen, "127.0.0.1", port)
	check.raises("a bad address raises", "Listen error", socket.listen, "not an address", 1)

	local stat = socket.netstat()
	local seen = false
	for _, s in ipairs(stat) do
		if s.id == listener and s.type == "LISTEN" and s.address == "127.0.0.1:" .. port then
			seen = true
		end
	end
	check.ok("netstat lists the listener", seen)
	check.eq("invalid for an unknown socket", socket.invalid(123456), true)

	check.done()
end)
