-- Harbor node 1: starts the key/value service (examples/lua/simpledb.lua) and makes it the
-- network's global name SDB; the datacenter (DATACENTER) runs on this node for everyone.
local skynet = require "skynet"
require "skynet.manager"

skynet.start(function()
	local sdb = skynet.newservice("simpledb")
	skynet.name("SDB", sdb)
	skynet.error("harbor 1: SDB is " .. skynet.address(sdb) .. "; start examples/harbor/slave_config next")
end)
