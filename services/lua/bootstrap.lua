-- The Lua bootstrap (skynet's `bootstrap = "snlua bootstrap"`), in skynet's order: the
-- launcher, .cslave (the native cslave in a harbor network, which the node joined before
-- bootstrap; cdummy on a single node), DATACENTER (datacenterd, on the standalone node),
-- .service (service_mgr), then the `start` service (default "main"); then it exits.
local skynet = require "skynet"
require "skynet.manager"

skynet.start(function()
	local launcher = assert(skynet.launch("snlua", "launcher"))
	skynet.name(".launcher", launcher)

	local slave
	if skynet.getenv "master" then
		slave = skynet.launch("cslave")
		if not slave then
			skynet.abort()
		end
	else
		-- A single node (skynet: harbor = 0) is its own standalone node.
		if not skynet.getenv "standalone" then
			skynet.setenv("standalone", "true")
		end
		local ok
		ok, slave = pcall(skynet.newservice, "cdummy")
		if not ok then
			skynet.abort()
		end
	end
	skynet.name(".cslave", slave)

	if skynet.getenv "standalone" then
		local datacenter = skynet.newservice "datacenterd"
		skynet.name("DATACENTER", datacenter)
	end
	skynet.newservice "service_mgr"

	pcall(skynet.newservice, skynet.getenv "start" or "main")
	skynet.exit()
end)
