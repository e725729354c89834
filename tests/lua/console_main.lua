-- Starts what the console tests talk to: a `.pong` service and a debug console on a free
-- port of 127.0.0.1 (the console logs the port it bound).
local skynet = require "skynet"
require "skynet.manager"

skynet.start(function()
	local pong = skynet.newservice("pong")
	skynet.name(".pong", pong)
	skynet.newservice("debug_console", "127.0.0.1", 0)
end)
