-- Tenant test: socket and timer quotas. With the argument "owner" (tenant `other`) it
-- listens on 127.0.0.1 and, bound to the exported `.other_sockets`, answers PORT, ID (its
-- listener's id) and OPEN (whether the listener is still in its netstat). Without (tenant
-- `limited`: 2 sockets, 5 timeouts, listen on 127.0.0.1 only, connect to 127.0.0.1 only)
-- it tries each limit and logs `OBSERVED name ok|error detail` for tests/blackbox/tenants.rs.
local skynet = require "skynet"
require "skynet.manager"
local socket = require "skynet.socket"

local function try(name, f, ...)
	local ok, result = pcall(f, ...)
	skynet.error("OBSERVED", name, ok and "ok" or "error", tostring(result))
end

local function owner()
	local id, _, port = socket.listen("127.0.0.1", 0)
	socket.start(id, function(conn) socket.start(conn) end)
	skynet.register(".other_sockets")
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "PORT" then
			skynet.retpack(port)
		elseif cmd == "ID" then
			skynet.retpack(id)
		else
			local open = false
			for _, s in ipairs(socket.netstat()) do
				open = open or s.id == id
			end
			skynet.retpack(open)
		end
	end)
end

local function limited()
	while not skynet.localname(".other_sockets") do
		skynet.sleep(1)
	end
	local port = skynet.call(".other_sockets", "lua", "PORT")
	try("timers", function()
		local armed = 0
		local ok, err = pcall(function()
			for _ = 1, 10 do
				skynet.timeout(100000, function() end)
				armed = armed + 1
			end
		end)
		return string.format("armed %d: %s", armed, ok and "" or err)
	end)
	try("listen_denied", socket.listen, "0.0.0.0", 0)
	try("listen_allowed", function() return math.type(socket.listen("127.0.0.1", 0)) end)
	try("connect_denied", function() return select(2, socket.open("localhost", port)) end)
	try("connect_allowed", function() return math.type(socket.open("127.0.0.1", port)) end)
	try("socket_limit", socket.listen, "127.0.0.1", 0)
	local foreign = skynet.call(".other_sockets", "lua", "ID")
	try("foreign_write", socket.write, foreign, "x")
	try("foreign_close", function()
		-- not in this service's pool: the driver is asked directly
		local closed, why = require("skynet.socketdriver").close(foreign)
		return tostring(closed) .. " " .. tostring(why)
	end)
	try("foreign_still_open", skynet.call, ".other_sockets", "lua", "OPEN")
	try("netstat_own", function() return #socket.netstat() end)
	skynet.error("QUOTAS DONE")
end

local mode = ...

skynet.start(function()
	if mode == "owner" then
		owner()
	else
		limited()
	end
end)
