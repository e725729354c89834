-- The gate example's first service (examples/gate_config): a watchdog with its gate on
-- 127.0.0.1:8888, then a client that talks to it. The node keeps running until Ctrl-C, so
-- other clients can connect too (each packet: a 2-byte big-endian length, then the text).
local skynet = require "skynet"

skynet.start(function()
	local watchdog = skynet.newservice("watchdog")
	local address, port = skynet.call(watchdog, "lua", "start", {
		address = "127.0.0.1",
		port = 8888,
		maxclient = 64,
		nodelay = true,
	})
	skynet.error(string.format("gate_main: the gate listens on %s:%d; Ctrl-C stops the node",
		address, port))
	skynet.newservice("client", port)
end)
