-- skynet.db.redis.cluster against a real Redis Cluster of three masters (started by the
-- Rust test on loopback: their ports are the config's redis_cluster).
local skynet = require "skynet"
local socket = require "skynet.socket"
local redis = require "skynet.db.redis"
local rediscluster = require "skynet.db.redis.cluster"
local crc16 = require "skynet.db.redis.crc16"
local check = require "check"

local ports, startup = {}, {}
for p in skynet.getenv("redis_cluster"):gmatch "%d+" do
	ports[#ports + 1] = tonumber(p)
	startup[#startup + 1] = { host = "127.0.0.1", port = tonumber(p) }
end

-- plain connections to each node, to look behind the client's back: port -> connection
local direct = {}

local function count(t)
	local n = 0
	for _ in pairs(t) do
		n = n + 1
	end
	return n
end

local wait_until = check.wait_until

-- the ports of the nodes holding `key` with `value` (asked directly: the others say MOVED)
local function holders(key, value)
	local found = {}
	for _, port in ipairs(ports) do
		local ok, v = pcall(direct[port].get, direct[port], key)
		if ok and v == value then
			found[#found + 1] = port
		end
	end
	return found
end

local function hashing(db)
	check.eq("crc16 of 123456789 is XMODEM's check value", crc16 "123456789", 0x31C3)
	check.eq("crc16 of nothing", crc16 "", 0)
	check.eq("slot of foo (Redis's docs)", db:keyslot "foo", 12182)
	check.eq("a slot is crc16 mod 16384", db:keyslot "123456789", 0x31C3 % 16384)
	check.eq("hash tags: one slot for a user's keys", db:keyslot "{user1000}.following",
		db:keyslot "{user1000}.followers")
	check.eq("the tag alone is hashed", db:keyslot "{user1000}.following", crc16 "user1000" % 16384)
	check.eq("an empty tag: the whole key", db:keyslot "foo{}{bar}", crc16 "foo{}{bar}" % 16384)
	check.eq("up to the first } after the first {", db:keyslot "foo{{bar}}zap", crc16 "{bar" % 16384)
	check.eq("only the first tag", db:keyslot "foo{bar}{zap}", crc16 "bar" % 16384)
	check.eq("a { without a }: the whole key", db:keyslot "a{b", crc16 "a{b" % 16384)
	check.eq("a number key is its text", db:keyslot(42), db:keyslot "42")
	-- the server's own CLUSTER KEYSLOT agrees, over all kinds of keys
	local keys = { "", "{", "}", "}{", "{}", "{a}", "a{}b", "\0\255{\1}", string.rep("x", 1000) }
	for i = 1, 300 do
		keys[#keys + 1] = "key:" .. i
		keys[#keys + 1] = "{tag" .. i % 7 .. "}field" .. i
		keys[#keys + 1] = string.char(i % 256, (i * 7) % 256) .. "{" .. i .. "}"
	end
	local conn = direct[ports[1]]
	local wrong = {}
	for _, key in ipairs(keys) do
		local theirs = conn:cluster("keyslot", key)
		if theirs ~= db:keyslot(key) then
			wrong[#wrong + 1] = string.format("%q: %d, server %d", key, db:keyslot(key), theirs)
		end
	end
	check.eq("keyslot agrees with CLUSTER KEYSLOT on " .. #keys .. " keys", table.concat(wrong, "; "), "")
end

local function commands(db)
	check.eq("a node per master in the slot map", #db.nodes, 3)
	local used, misplaced = {}, 0
	for i = 1, 60 do
		local key = "k" .. i
		db:set(key, "v" .. i)
		local found = holders(key, "v" .. i)
		if #found ~= 1 or db:get(key) ~= "v" .. i then
			misplaced = misplaced + 1
		else
			used[found[1]] = true
		end
	end
	check.eq("every key is on exactly one node and reads back", misplaced, 0)
	check.eq("keys in different slots land on every master", count(used), 3)
	check.eq("a connection per node", count(db.connections), 3)
	for _, port in ipairs(ports) do
		check.ok("connections are named host:port", db.connections["127.0.0.1:" .. port] ~= nil)
	end

	db:del "list"
	check.eq("rpush", db:rpush("list", 1, 2, 3), 3)
	check.eq("lrange", table.concat(db:lrange("list", 0, -1), ","), "1,2,3")
	check.eq("arguments in a table", db:rpush { "list", 4 }, 4)
	check.eq("hmset", db:hmset("map", "key1", 1, "key2", 2), "OK")
	check.eq("hgetall", table.concat(db:hgetall "map", ","), "key1,1,key2,2")
	check.eq("exists is a boolean", db:exists "map", true)
	check.eq("sismember is a boolean", db:sismember("nosuchset", "x"), false)
	check.eq("incr is an integer", db:incr "counter", 1)
	check.eq("a missing key is nil", db:get "missing", nil)
	check.raises("a Redis error raises its text", "WRONGTYPE", db.incr, db, "list")
	check.raises("a nil argument raises", "is nil", db.set, db, "A", nil, "EX")

	-- hash tags put keys on one node, so multi-key commands work on them
	check.eq("mset of one tag", db:mset("{user1000}.following", "a", "{user1000}.followers", "b"), "OK")
	check.eq("mget of one tag", table.concat(db:mget("{user1000}.following", "{user1000}.followers"), ","), "a,b")
	check.ok("two plain keys in different slots", db:keyslot "a1" ~= db:keyslot "b1")
	check.raises("a multi-key command across slots is refused", "CROSSSLOT", db.mset, db, "a1", "x", "b1", "y")

	db:set("A", 1)
	local script = [[
		if redis.call("get", KEYS[1]) == ARGV[1] then
			return "ok"
		else
			return "fail"
		end]]
	check.eq("eval, routed by its key", db:eval(script, 1, "A", 1), "ok")
	check.eq("eval of keys in one slot", db:eval("return redis.call('mget', KEYS[1], KEYS[2])",
		2, "{user1000}.following", "{user1000}.followers")[2], "b")
	check.raises("eval of keys in different slots", "all keys must map to the same key slot",
		db.eval, db, "return 1", 2, "a1", "b1")
	check.eq("eval without keys, routed by its first argument (as skynet's)",
		db:eval("return ARGV[1]", 0, "x"), "x")
	check.raises("a command about a node, not a key", "no way to dispatch", db.info, db)
	check.raises("a command without arguments", "no way to dispatch", db.ping, db)
	check.raises("a pipeline on the cluster says how to make one", "get_connection_by_slot",
		db.pipeline, db, { { "get", "A" } })
	check.eq("CLUSTER reaches a node", db:cluster("keyslot", "foo"), 12182)

	-- a pipeline on the connection of a slot, as skynet's test
	local conn = db:get_connection_by_slot(db:keyslot "{foo}")
	local ret = conn:pipeline({
		{ "hincrby", "{foo}hello", 1, 1 },
		{ "del", "{foo}hello" },
		{ "hmset", "{foo}hello", 1, 1, 2, 2, 3, 3 },
		{ "hgetall", "{foo}hello" },
	}, {})
	check.eq("pipeline on a slot's connection", ret[1].out, 1)
	check.eq("every reply", table.concat(ret[4].out, ","), "1,1,2,2,3,3")
	check.eq("a random connection answers", db:get_random_connection():ping(), "PONG")
end

local function redirections(db)
	-- a slot map pointing at the wrong node: that node answers MOVED
	local key = "moved-key"
	db:set(key, "here")
	local slot = db:keyslot(key)
	local owner = holders(key, "here")[1]
	local wrong = owner == ports[1] and ports[2] or ports[1]
	db.slots[slot] = { host = "127.0.0.1", port = wrong }
	check.eq("no reload pending", db.refresh_table_asap, false)
	check.eq("a read on the wrong node follows MOVED", db:get(key), "here")
	check.eq("MOVED points the slot at the node named", db.slots[slot].port, owner)
	check.eq("and asks for a reload", db.refresh_table_asap, true)
	db:get(key)
	check.eq("which the next command does", db.refresh_table_asap, false)

	-- no slot map at all: any node, then MOVED
	db:flush_slots_cache()
	check.eq("flush_slots_cache empties the map", next(db.slots), nil)
	local wrong_reads = 0
	for i = 1, 30 do
		if db:get("k" .. i) ~= "v" .. i then
			wrong_reads = wrong_reads + 1
		end
	end
	check.eq("after a flush every read finds its node", wrong_reads, 0)
	check.eq("and the map is loaded again", db.slots[db:keyslot "k1"] ~= nil, true)

	-- OBJECT's first argument is no key: it is routed by "encoding", and MOVED from there
	-- names the key's node
	local elsewhere
	for i = 1, 60 do
		if holders("k" .. i, "v" .. i)[1] ~= db.slots[db:keyslot "encoding"].port then
			elsewhere = "k" .. i
			break
		end
	end
	check.eq("a command whose first argument is not its key follows MOVED",
		db:object("encoding", elsewhere), "embstr")

	db:close_all_connection()
	check.eq("close_all_connection", count(db.connections), 0)
	check.eq("the next command connects again", db:get "k1", "v1")
end

-- a slot moved from one master to another, as redis-cli --cluster reshard does: ASK while
-- it migrates, MOVED once it is moved
local function migration(db)
	local key = "migrating-key"
	local slot = db:keyslot(key)
	db:set(key, "old home")
	local src = holders(key, "old home")[1]
	local dst = src == ports[1] and ports[2] or ports[1]
	local other = ports[1] + ports[2] + ports[3] - src - dst
	local A, B, C = direct[src], direct[dst], direct[other]
	local srcid, dstid = A:cluster "myid", B:cluster "myid"
	check.eq("importing", B:cluster("setslot", slot, "importing", srcid), "OK")
	check.eq("migrating", A:cluster("setslot", slot, "migrating", dstid), "OK")

	local newkey = "{" .. key .. "}new"
	check.eq("a key of the same slot", db:keyslot(newkey), slot)
	check.raises("the source answers ASK for a key it does not have", "ASK " .. slot, A.get, A, newkey)
	check.eq("a write through ASK", db:set(newkey, "new home"), "OK")
	check.eq("ASK asks for no reload", db.refresh_table_asap, false)
	check.eq("the map still says the source", db.slots[slot].port, src)
	check.raises("the key is not on the source", "ASK", A.get, A, newkey)
	check.eq("it is on the destination", B:pipeline { { "asking" }, { "get", newkey } }, "new home")

	check.eq("MIGRATE", A:migrate("127.0.0.1", dst, key, 0, 5000), "OK")
	check.eq("a migrated key read through ASK", db:get(key), "old home")
	check.eq("exists through ASK is a boolean", db:exists(key), true)
	check.eq("a missing key through ASK", db:get "{migrating-key}none", nil)

	for _, conn in ipairs { B, A, C } do
		conn:cluster("setslot", slot, "node", dstid)
	end
	check.eq("the slot moved: MOVED from the source", db:get(key), "old home")
	check.eq("MOVED asks for a reload", db.refresh_table_asap, true)
	check.eq("after the reload", db:get(newkey), "new home")
	check.eq("the map says the destination", db.slots[slot].port, dst)
	check.eq("the reload is done", db.refresh_table_asap, false)
end

local function pubsub()
	local got, waiting = {}, nil
	local function onmessage(data, channel, pattern)
		got[#got + 1] = table.concat({ data, channel, pattern }, "|")
		if waiting then
			skynet.wakeup(waiting)
		end
	end
	local db = rediscluster.new(startup, { db = 0 }, onmessage)
	-- subscriptions of a node count on that node only
	local function numsub(channel)
		local node = db.slots[db:keyslot(channel)]
		return direct[node.port]:pubsub("numsub", channel)[2]
	end
	local function numpat(pattern)
		local node = db.slots[db:keyslot(pattern)]
		return direct[node.port]:pubsub "numpat"
	end
	db:subscribe "world"
	db:subscribe "myteam"
	db:psubscribe "{tag}*team"
	check.ok("the subscriptions reach their nodes", wait_until(function()
		return numsub "world" == 1 and numsub "myteam" == 1 and numpat "{tag}*team" >= 1
	end))
	check.eq("publish reaches the subscriber", db:publish("world", "hello,world"), 1)
	db:publish("myteam", "hello,my team")
	db:publish("{tag}1team", "hello,1team")
	db:publish("nobody", "lost")
	check.ok("onmessage is called for each", wait_until(function()
		return #got >= 3
	end))
	skynet.sleep(10)
	table.sort(got)
	check.eq("data, channel and pattern", table.concat(got, " / "),
		"hello,1team|{tag}1team|{tag}*team / hello,my team|myteam / hello,world|world")

	db:unsubscribe "world"
	check.ok("unsubscribe", wait_until(function()
		return numsub "world" == 0
	end))
	check.eq("nobody gets it then", db:publish("world", "late"), 0)
	check.eq("commands work beside subscriptions", db:set("pubsub-key", 1), "OK")

	db:close()
	check.ok("close ends the subscriptions", wait_until(function()
		return numsub "myteam" == 0
	end))
	check.eq("and the connections", count(db.connections), 0)
end

local function concurrency()
	-- one node given as a table of its own; 60 coroutines start at once on no connection
	local db = rediscluster.new(startup[2])
	local wrong, left, done = 0, 60, {}
	for i = 1, 60 do
		skynet.fork(function()
			local ok, v = pcall(function()
				db:set("c" .. i, i)
				return db:get("c" .. i)
			end)
			if not ok or v ~= tostring(i) then
				wrong = wrong + 1
			end
			left = left - 1
			if left == 0 then
				skynet.wakeup(done)
			end
		end)
	end
	skynet.wait(done)
	check.eq("60 concurrent commands each get their own reply", wrong, 0)
	check.eq("still one connection per node", count(db.connections), 3)
	db:close()

	local small = rediscluster.new(startup, { max_connections = 1 })
	local bad = 0
	for i = 1, 30 do
		if small:get("k" .. i) ~= "v" .. i then
			bad = bad + 1
		end
	end
	check.eq("max_connections = 1 still reaches every node", bad, 0)
	check.ok("and keeps to one connection", count(small.connections) <= 1)
	small:close()
end

local function failures()
	check.raises("db other than 0", "only db 0", rediscluster.new, startup, { db = 1 })
	check.raises("no startup node", "startup node", rediscluster.new, { {} })

	-- a port nobody listens on
	local listener, _, port = socket.listen("127.0.0.1", 0)
	socket.close(listener)
	local dead = { host = "127.0.0.1", port = port }
	local started = skynet.now()
	local db = rediscluster.new(dead)
	check.raises("no node reachable: a clear error", "can't reach a single startup node", db.get, db, "k1")
	check.ok("at once, not after a hang", skynet.now() - started < 500, skynet.now() - started)
	db:close()

	local db2 = rediscluster.new { dead, startup[3] }
	check.eq("a dead startup node is skipped", db2:get "k1", "v1")
	db2:close()
end

-- a part of the suite: an error it raises is a failure reported at once, not a service
-- that never ends
local function part(name, f, ...)
	local ok, err = xpcall(f, debug.traceback, ...)
	check.ok(name .. " ran to its end", ok, err)
end

skynet.start(function()
	for _, port in ipairs(ports) do
		direct[port] = redis.connect { host = "127.0.0.1", port = port }
	end
	local db = rediscluster.new(startup, { read_slave = true, auth = nil, db = 0 })
	part("hashing", hashing, db)
	part("commands", commands, db)
	part("redirections", redirections, db)
	part("migration", migration, db)
	part("pubsub", pubsub)
	part("concurrency", concurrency)
	part("failures", failures)
	db:close()
	check.done()
end)
