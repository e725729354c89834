-- Node game: every two seconds, counts a visit in node db's "@sdb" with cluster.call, and
-- shows what a failure looks like when db is not running (start it, stop it, start it again).
local skynet = require "skynet"
local cluster = require "skynet.cluster"

skynet.start(function()
	local visits = 0
	while true do
		visits = visits + 1
		local ok, err = pcall(function()
			local old = cluster.call("db", "@sdb", "SET", "visits", visits)
			local now = cluster.call("db", "@sdb", "GET", "visits")
			skynet.error(string.format("node game: visits %s -> %s (db's @sdb, over the cluster)", tostring(old), tostring(now)))
		end)
		if not ok then
			skynet.error("node game: " .. tostring(err):gsub("^.-: call failed", "call failed") .. "; trying again")
		end
		skynet.sleep(200)
	end
end)
