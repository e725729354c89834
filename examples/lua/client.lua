-- A client of the gate example (what skynet's examples/client.lua does from outside the
-- node, here as a service using skynet.socket): `client <port>` connects to the gate, sends
-- a few framed requests, logs the answers and ends. The node keeps running.
local skynet = require "skynet"
local socket = require "skynet.socket"
local netpack = require "skynet.netpack"

local port = tonumber((...)) or 8888

-- One framed packet, or nil when the connection closed first.
local function read_packet(fd)
	local header = socket.read(fd, 2)
	if not header then
		return nil
	end
	local size = socket.header(header)
	if size == 0 then
		return ""
	end
	return socket.read(fd, size) or nil
end

skynet.start(function()
	local fd = assert(socket.open("127.0.0.1", port))
	for _, request in ipairs { "echo hello, gate", "time", "echo 你好", "nonsense", "quit" } do
		socket.write(fd, netpack.pack(request))
		local answer = read_packet(fd)
		skynet.error(string.format("client: %q -> %q", request, tostring(answer)))
	end
	-- after "quit" the gate closes the connection
	local rest = socket.read(fd)
	skynet.error("client: connection closed by the gate:", rest == false)
	socket.close(fd)
	skynet.error("client done")
	skynet.exit()
end)
