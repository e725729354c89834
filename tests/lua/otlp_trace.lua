-- The OTLP test's node: opens the cluster, names itself `self`, and makes one traced
-- cluster call to its own `@echo` (examples/dashboard/demo_echo.lua), then logs `TRACED <tag>`.
local skynet = require "skynet"
local cluster = require "skynet.cluster"

skynet.start(function()
	local echo = skynet.newservice("demo_echo")
	cluster.register("echo", echo)
	cluster.reload({ self = cluster.open(0) })
	skynet.fork(function()
		skynet.trace("otlp")
		local answer = cluster.call("self", "@echo", "PING")
		skynet.error("TRACED " .. tostring(skynet.tracetag()) .. " " .. tostring(answer))
	end)
end)
