-- The node tenant's part of the dashboard demo: an echo service called steadily, and the
-- cluster: the node opens a cluster port and calls its own `@echo` through it.
local skynet = require "skynet"
local cluster = require "skynet.cluster"

skynet.start(function()
	local echo = skynet.newservice("demo_echo")
	cluster.register("echo", echo)
	local at = cluster.open(0)
	cluster.reload({ self = at })
	skynet.error("demo: cluster listening at", at)
	skynet.fork(function()
		while true do
			for _ = 1, 200 do
				skynet.call(echo, "lua", "PING")
			end
			skynet.sleep(5)
		end
	end)
	skynet.fork(function()
		while true do
			for _ = 1, 20 do
				cluster.call("self", "@echo", "PING")
			end
			skynet.sleep(10)
		end
	end)
end)
