-- Bounds test (a node of its own, tests/blackbox/cli.rs): a gate that, for each connection,
-- is busy for 1.5 s right after it starts reading it (the client's flood meanwhile waits in
-- the host, up to socket_backlog, and in TCP), then reads it to its end and logs
-- `GATE RECEIVED n`. Logs `GATE LISTENING port` once it listens.
local skynet = require "skynet"
local socket = require "skynet.socket"

skynet.start(function()
	local listener, _, port = socket.listen("127.0.0.1", 0)
	socket.start(listener, function(id)
		socket.start(id)
		local stop = skynet.now() + 150
		while skynet.now() < stop do
		end
		skynet.fork(function()
			local received = 0
			while true do
				local data = socket.read(id)
				if not data then
					break
				end
				received = received + #data
			end
			skynet.error("GATE RECEIVED " .. received)
		end)
	end)
	skynet.error("GATE LISTENING " .. port)
end)
