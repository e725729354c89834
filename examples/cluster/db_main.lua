-- Node db: starts the key/value service (examples/lua/simpledb.lua), publishes it to the
-- cluster as "@sdb", and listens where the node table puts "db" (127.0.0.1:2528).
local skynet = require "skynet"
local cluster = require "skynet.cluster"

skynet.start(function()
	local sdb = skynet.newservice("simpledb")
	cluster.register("sdb", sdb)
	local at = cluster.open("db")
	skynet.error("node db: @sdb is served on " .. at .. "; start examples/cluster/game_config next")
end)
