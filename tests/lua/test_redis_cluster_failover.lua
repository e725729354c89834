-- skynet.db.redis.cluster against a real Redis Cluster of three masters with a replica each,
-- requiring the password "foobared" (started by the Rust test: the masters' ports, then the
-- replicas', are the config's redis_cluster): auth, then a master that dies under the client.
local skynet = require "skynet"
local redis = require "skynet.db.redis"
local rediscluster = require "skynet.db.redis.cluster"
local check = require "check"

local PASSWORD = "foobared"

local startup = {}
for p in skynet.getenv("redis_cluster"):gmatch "%d+" do
	startup[#startup + 1] = { host = "127.0.0.1", port = tonumber(p) }
end

local wait_until = check.wait_until

local function authentication()
	local anonymous = rediscluster.new(startup)
	check.raises("without auth: a clear error", "NOAUTH", anonymous.get, anonymous, "k")
	anonymous:close()
	local wrong = rediscluster.new(startup, { auth = "wrong" })
	check.raises("a wrong password: no node can be used", "can't reach a single startup node",
		wrong.get, wrong, "k")
	wrong:close()
end

local function dead_master()
	local db = rediscluster.new(startup, { auth = PASSWORD, read_slave = true })
	local key = "survivor"
	local slot = db:keyslot(key)
	check.eq("auth: commands work", db:set(key, "kept"), "OK")
	check.eq("and read back", db:get(key), "kept")
	local master = db.slots[slot]
	-- (a replica is in CLUSTER SLOTS once it has synced something)
	local conn = db:get_connection_by_slot(slot)
	check.eq("the write reached the replica", conn:wait(1, 5000), 1)
	check.ok("the slot map knows the replica", wait_until(function()
		db:initialize_slots_cache()
		local node = db.slots[slot]
		return node and node.slaves and #node.slaves == 1
	end))
	local replica = db.slots[slot].slaves[1]

	-- a master that cannot be reached any more, under a client connected to it
	local killer = redis.connect { host = master.host, port = master.port, auth = PASSWORD }
	pcall(killer.shutdown, killer, "nosave")
	check.ok("the master is gone", wait_until(function()
		return not pcall(redis.connect, { host = master.host, port = master.port })
	end))

	check.eq("read_slave: the replica answers a read", db:get(key), "kept")
	check.ok("through a connection to the replica", db.connections[replica.name] ~= nil, replica.name)

	local started = skynet.now()
	local ok, err = pcall(db.set, db, key, "lost")
	local took = skynet.now() - started
	check.eq("a write for a dead master fails", ok, false)
	check.ok("saying which node cannot be reached", tostring(err):find(master.name .. " cannot be reached", 1, true),
		err)
	check.ok("after a bounded number of tries", tostring(err):find("16 tries", 1, true), err)
	check.ok("in a bounded time", took < 500, took)

	local plain = rediscluster.new(startup, { auth = PASSWORD })
	started = skynet.now()
	check.raises("without read_slave a read fails too", master.name .. " cannot be reached", plain.get, plain, key)
	check.ok("also in a bounded time", skynet.now() - started < 500, skynet.now() - started)

	-- the other masters' slots are not affected
	local other = 0
	for i = 1, 100 do
		local k = "other" .. i
		if db.slots[db:keyslot(k)].name ~= master.name then
			local ok1 = pcall(db.set, db, k, i)
			local ok2, v = pcall(db.get, db, k)
			if ok1 and ok2 and v == tostring(i) then
				other = other + 1
			else
				other = -1000
			end
		end
	end
	check.ok("keys of the live masters still work", other > 30, other)
	plain:close()
	db:close()
end

-- a part of the suite: an error it raises is a failure reported at once, not a service
-- that never ends
local function part(name, f)
	local ok, err = xpcall(f, debug.traceback)
	check.ok(name .. " ran to its end", ok, err)
end

skynet.start(function()
	part("authentication", authentication)
	part("a dead master", dead_master)
	check.done()
end)
