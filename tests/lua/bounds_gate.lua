-- Bounds test: a gate that reads every connection to its end, counting bytes. Driven by
-- requests: LISTEN answers the port; STARTED how many connections it reads; SPIN ms keeps
-- the service busy (its mailbox fills meanwhile); RECEIVED answers the bytes read so far.
-- With the argument `alone` (a node of its own, tests/blackbox/cli.rs) it listens at start
-- and logs `GATE LISTENING port`, is busy for 1.5 s right after it starts reading each
-- connection (the flood meanwhile waits in the host, up to socket_backlog, and in TCP), and
-- logs `GATE RECEIVED n` when a connection ends.
local skynet = require "skynet"
local socket = require "skynet.socket"

local alone = ... == "alone"
local received = 0
local started = 0

local function spin(ms)
	local stop = skynet.now() + ms // 10
	while skynet.now() < stop do
	end
end

local function listen()
	local listener, _, port = socket.listen("127.0.0.1", 0)
	socket.start(listener, function(id)
		socket.start(id)
		started = started + 1
		if alone then
			spin(1500)
		end
		skynet.fork(function()
			while true do
				local data = socket.read(id)
				if not data then
					break
				end
				received = received + #data
			end
			if alone then
				skynet.error("GATE RECEIVED " .. received)
			end
		end)
	end)
	return port
end

skynet.start(function()
	if alone then
		skynet.error("GATE LISTENING " .. listen())
		return
	end
	skynet.dispatch("lua", function(_, _, cmd, ms)
		if cmd == "LISTEN" then
			skynet.ret(skynet.pack(listen()))
		elseif cmd == "SPIN" then
			spin(ms)
			skynet.ret(skynet.pack(true))
		elseif cmd == "STARTED" then
			skynet.ret(skynet.pack(started))
		elseif cmd == "RECEIVED" then
			skynet.ret(skynet.pack(received))
		end
	end)
end)
