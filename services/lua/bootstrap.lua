-- The Lua bootstrap (skynet's `bootstrap = "snlua bootstrap"`), in skynet's order: the
-- launcher, .cslave (cdummy: single node), DATACENTER (datacenterd), .service (service_mgr),
-- then the `start` service (default "main"); then it exits.
local skynet = require "skynet"
require "skynet.manager"

skynet.start(function()
	local launcher = assert(skynet.launch("snlua", "launcher"))
	skynet.name(".launcher", launcher)

	local harbor_id = tonumber(skynet.getenv "harbor" or 0)
	if harbor_id == 0 and not skynet.getenv "standalone" then
		skynet.setenv("standalone", "true")
	end
	-- Until harbor support lands every node is a single node.
	local ok, slave = pcall(skynet.newservice, "cdummy")
	if not ok then
		skynet.abort()
	end
	skynet.name(".cslave", slave)

	local datacenter = skynet.newservice "datacenterd"
	skynet.name("DATACENTER", datacenter)
	skynet.newservice "service_mgr"

	pcall(skynet.newservice, skynet.getenv "start" or "main")
	skynet.exit()
end)
