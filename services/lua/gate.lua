-- gate: skynet's gate service (skywasm's own implementation, written to the behaviour of
-- skynet's service/gate.lua), on snax.gateserver. It accepts clients and tells its watchdog
-- (conf.watchdog, or whoever sent "open") with "lua" sends:
--
--   "socket", "open", fd, addr      a client connected; nothing is read until forward/accept
--   "socket", "close", fd           it closed (also after a kick)
--   "socket", "error", fd, reason   it failed
--   "socket", "warning", fd, kib    kib KiB wait unsent on it
--   "socket", "data", fd, packet    a packet of a client accepted with "accept"
--
-- Requests ("lua"): open(conf) -> address, port (the bound ones: port 0 picks one);
-- close() stops listening; forward(fd, client, address) sends fd's packets to `address`
-- (default: the requester) as "client" messages from `client` (default 0) whose session is
-- fd; accept(fd) sends them to the watchdog as "data"; kick(fd) closes the client.

local skynet = require "skynet"
local gateserver = require "snax.gateserver"
local netpack = require "skynet.netpack"

local watchdog
-- fd -> { fd, ip, agent, client }: agent nil until forward
local connection = {}

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
}

local handler = {}

function handler.open(source, conf)
	watchdog = conf.watchdog or source
	return conf.address, conf.port
end

function handler.message(fd, msg, sz)
	local c = connection[fd]
	local agent = c and c.agent
	if agent then
		-- the packet is a string, which redirect copies: nothing to free here
		skynet.redirect(agent, c.client, "client", fd, msg, sz)
	else
		skynet.send(watchdog, "lua", "socket", "data", fd, netpack.tostring(msg, sz))
	end
end

function handler.connect(fd, addr)
	connection[fd] = { fd = fd, ip = addr }
	skynet.send(watchdog, "lua", "socket", "open", fd, addr)
end

function handler.disconnect(fd)
	connection[fd] = nil
	skynet.send(watchdog, "lua", "socket", "close", fd)
end

function handler.error(fd, reason)
	connection[fd] = nil
	skynet.send(watchdog, "lua", "socket", "error", fd, reason)
end

function handler.warning(fd, size)
	skynet.send(watchdog, "lua", "socket", "warning", fd, size)
end

local CMD = {}

-- false when fd is gone already: the client may close while its agent is being made, and the
-- agent should hear that rather than fail
function CMD.forward(source, fd, client, address)
	local c = connection[fd]
	if c == nil then
		return false
	end
	c.client = client or 0
	c.agent = address or source
	gateserver.openclient(fd)
	return true
end

function CMD.accept(source, fd)
	local c = connection[fd]
	if c == nil then
		return false
	end
	c.agent = nil
	c.client = nil
	gateserver.openclient(fd)
	return true
end

function CMD.kick(source, fd)
	gateserver.closeclient(fd)
end

function handler.command(cmd, source, ...)
	local f = CMD[cmd]
	if f == nil then
		error("gate: unknown command " .. tostring(cmd))
	end
	return f(source, ...)
end

gateserver.start(handler)
