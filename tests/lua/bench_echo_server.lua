-- Benchmark server (host/benches/node.rs, "net-"): a skynet.socket echo service. PORT answers
-- the port it listens on (127.0.0.1, a free port); every connection is echoed until it
-- closes.
local skynet = require "skynet"
local socket = require "skynet.socket"

local port

local function echo(fd)
	socket.start(fd)
	while true do
		local data = socket.read(fd)
		if not data then
			break
		end
		socket.write(fd, data)
	end
	socket.close(fd)
end

skynet.start(function()
	local listener
	listener, _, port = socket.listen("127.0.0.1", 0, 1024)
	socket.start(listener, function(fd)
		skynet.fork(echo, fd)
	end)
	skynet.dispatch("lua", function()
		skynet.retpack(port)
	end)
end)
