-- Launches a crasher every 20 s; each runs past its tenant's CPU limit and is ended.
local skynet = require "skynet"

skynet.start(function()
	-- Tenants' start services may run before the Lua bootstrap has named `.launcher`.
	while not skynet.localname(".launcher") do
		skynet.sleep(10)
	end
	skynet.fork(function()
		while true do
			skynet.sleep(2000)
			local crasher = skynet.newservice("demo_crasher")
			skynet.send(crasher, "lua", "SPIN")
		end
	end)
end)
