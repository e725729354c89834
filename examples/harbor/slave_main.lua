-- Harbor node 2: every two seconds, counts a visit in node 1's SDB by its global name (an
-- ordinary skynet.call: addresses and global names span the harbor network) and reads it
-- back from the datacenter, which lives on node 1. harbor.link shows when node 1 goes away.
local skynet = require "skynet"
local harbor = require "skynet.harbor"
local datacenter = require "skynet.datacenter"

skynet.start(function()
	local sdb = harbor.queryname("SDB")
	skynet.error("harbor 2: SDB is " .. skynet.address(sdb) .. " on harbor " .. skynet.harbor(sdb))
	skynet.fork(function()
		harbor.link(1)
		skynet.error("harbor 2: the link to harbor 1 is down")
	end)
	local visits = 0
	while true do
		visits = visits + 1
		local ok, err = pcall(function()
			local old = skynet.call("SDB", "lua", "SET", "visits", visits)
			datacenter.set("last_visit", skynet.time())
			skynet.error(string.format("harbor 2: visits %s -> %s (SDB on harbor 1; datacenter last_visit %.2f)",
				tostring(old), tostring(visits), datacenter.get("last_visit")))
		end)
		if not ok then
			skynet.error("harbor 2: " .. tostring(err))
		end
		skynet.sleep(200)
	end
end)
