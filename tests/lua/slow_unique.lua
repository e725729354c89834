-- Test service for uniqueservice: takes a while to start and counts its instances in
-- the datacenter.
local skynet = require "skynet"
local datacenter = require "skynet.datacenter"
skynet.start(function()
	local n = (datacenter.get("slow_unique", "starts") or 0) + 1
	datacenter.set("slow_unique", "starts", n)
	skynet.sleep(5)
	skynet.dispatch("lua", function() skynet.ret(skynet.pack("unique", n)) end)
end)
