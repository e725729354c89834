-- Launches N agents in its tenant that call each other in a ring.
local skynet = require "skynet"

local count = tonumber(...) or 10

skynet.start(function()
	-- Tenants' start services may run before the Lua bootstrap has named `.launcher`.
	while not skynet.localname(".launcher") do
		skynet.sleep(10)
	end
	local agents = {}
	for i = 1, count do
		agents[i] = skynet.newservice("demo_agent", i)
	end
	for i, agent in ipairs(agents) do
		skynet.send(agent, "lua", "PEER", agents[i % count + 1])
	end
end)
