-- skynet.db.redis against a real redis-server (started by the Rust test on a free port).
local skynet = require "skynet"
local socket = require "skynet.socket"
local redis = require "skynet.db.redis"
local check = require "check"

-- an array reply as "a|b|c", to compare
local function list(t)
	return type(t) == "table" and table.concat(t, "|") or tostring(t)
end

local conf = { host = "127.0.0.1", port = tonumber(skynet.getenv "redis_port"), db = 0 }

local function commands(db)
	check.eq("del", db:del("A", "B", "C", "D", "L", "N"), 0)
	check.eq("set answers its status", db:set("A", "hello"), "OK")
	check.eq("get", db:get "A", "hello")
	check.eq("a missing key is nil", db:get "missing", nil)
	check.eq("incr is an integer", db:incr "N", 1)
	check.eq("incrby", db:incrby("N", 41), 42)
	check.eq("numbers are sent as text", db:set("B", 12.5), "OK")
	check.eq("and come back as strings", db:get "B", "12.5")
	check.eq("arguments in a table", db:rpush { "L", "x", "y", "z" }, 3)
	check.eq("an array reply", list(db:lrange("L", 0, -1)), "x|y|z")
	check.eq("an empty array", #db:lrange("nothing", 0, -1), 0)
	check.eq("sadd", db:sadd("C", "one"), 1)
	check.eq("sismember is a boolean", db:sismember("C", "one"), true)
	check.eq("and false when not a member", db:sismember("C", "two"), false)
	check.eq("exists is a boolean", db:exists "A", true)
	check.eq("exists of a missing key", db:exists "missing", false)
	for i = 1, 10 do
		db:hset("D", i, i)
	end
	local vals = db:hvals "D"
	table.sort(vals, function(a, b) return tonumber(a) < tonumber(b) end)
	check.eq("hvals", table.concat(vals, ","), "1,2,3,4,5,6,7,8,9,10")
	local big = string.rep("0123456789", 100000)
	db:set("big", big)
	check.eq("a megabyte value round-trips", db:get "big", big)
	local binary = "a\0b\r\nc"
	db:set("bin", binary)
	check.eq("binary values with CRLF inside", db:get "bin", binary)
	check.raises("a Redis error raises its text", "WRONGTYPE", db.incr, db, "L")
	check.raises("an unknown command raises", "unknown command", db.nosuchcommand, db)
	check.raises("a boolean command raises the error's text", "WRONGTYPE", db.sismember, db, "L", "x")
	check.raises("a nil argument raises", "argument #2 is nil", db.set, db, "A", nil, "EX")
	check.eq("the connection goes on after errors", db:get "A", "hello")

	-- transactions, as skynet's testredis
	check.eq("multi", db:multi(), "OK")
	check.eq("queued", db:get "A", "QUEUED")
	db:set("A", "world")
	local t = db:exec()
	check.eq("exec returns every reply", list(t), "hello|OK")
end

local function pipelines(db)
	local last = db:pipeline {
		{ "del", "P" },
		{ "hmset", "P", 1, 1, 2, 2 },
		{ "hgetall", "P" },
	}
	check.eq("a pipeline returns the last reply", list(last), "1|1|2|2")
	local all = db:pipeline({
		{ "set", "Q", "q" },
		{ "incr", "Q" },
		{ "get", "Q" },
	}, {})
	check.eq("with a result table, every reply", #all, 3)
	check.eq("status", all[1].out, "OK")
	check.eq("an error in the middle is ok = false", all[2].ok, false)
	check.ok("with its text", all[2].out:find "not an integer" ~= nil, all[2].out)
	check.eq("and the rest go on", all[3].out, "q")
	check.raises("an empty pipeline", "pipeline is null", db.pipeline, db, {})
end

local function concurrent(db)
	-- many coroutines share the connection; each gets its own reply
	local results, left = {}, 100
	local done = {}
	for i = 1, 100 do
		skynet.fork(function()
			db:set("c" .. i, i)
			results[i] = db:get("c" .. i)
			left = left - 1
			if left == 0 then
				skynet.wakeup(done)
			end
		end)
	end
	skynet.wait(done)
	local wrong = 0
	for i = 1, 100 do
		if results[i] ~= tostring(i) then
			wrong = wrong + 1
		end
	end
	check.eq("100 concurrent requests each get their own reply", wrong, 0)
end

local function watching(db)
	local w = redis.watch(conf)
	w:subscribe "foo"
	w:psubscribe "hello.*"
	local got = {}
	local done = {}
	skynet.fork(function()
		for _ = 1, 4 do
			got[#got + 1] = table.concat({ w:message() }, "|")
		end
		skynet.wakeup(done)
	end)
	-- wait until both subscriptions are confirmed (message() reads the confirmations)
	local subscribed = 0
	for _ = 1, 1000 do -- (a loaded machine may take seconds)
		subscribed = db:pubsub("numsub", "foo")[2] + db:pubsub "numpat"
		if subscribed == 2 then
			break
		end
		skynet.sleep(1)
	end
	check.eq("both subscriptions reached the server", subscribed, 2)
	if subscribed ~= 2 then
		w:disconnect()
		return -- (nothing would reach the watcher)
	end
	db:publish("foo", 1)
	db:publish("hello.foo", 2)
	db:publish("other", 3)
	db:publish("foo", 4)
	db:publish("hello.bar", 5)
	-- (the watcher may have read all four while the publishes were answered: a wakeup with
	-- nobody waiting is lost, as in skynet, so wait only when it is still reading)
	if #got < 4 then
		skynet.wait(done)
	end
	check.eq("messages and pattern messages, in order", list(got), "1|foo|2|hello.foo|hello.*|4|foo|5|hello.bar|hello.*")
	w:disconnect()
end

local function authenticated()
	local locked = { host = "127.0.0.1", port = tonumber(skynet.getenv "redis_auth_port") }
	local anonymous = redis.connect(locked)
	check.raises("without auth a locked server refuses", "NOAUTH", anonymous.get, anonymous, "A")
	anonymous:disconnect()
	locked.auth = "foobared"
	locked.db = 3
	local db = redis.connect(locked)
	db:set("where", "db3")
	check.eq("auth, then select", db:get "where", "db3")
	db:select(0)
	check.eq("another db does not have it", db:get "where", nil)
	db:disconnect()
	locked.auth = "wrong"
	-- (as in skynet: the connect raises socketchannel.error; the log says why)
	check.raises("a wrong password fails the connect", "[Error: socket]", redis.connect, locked)
end

local function broken_servers()
	-- a "server" that answers something that is not RESP: the request raises, the
	-- service goes on
	local listener, _, port = socket.listen("127.0.0.1", 0)
	socket.start(listener, function(fd)
		socket.start(fd)
		socket.readline(fd, "\r\n")
		socket.write(fd, "?garbage\r\n")
	end)
	check.ok("the listener has a port", port, port)
	local db = redis.connect { host = "127.0.0.1", port = port }
	check.raises("garbage from the server raises", "redis: unexpected reply", db.get, db, "A")
	db:disconnect()
	socket.close(listener)
	check.raises("connecting to a closed port raises", "[Error: socket]", redis.connect, { host = "127.0.0.1", port = port })
end

skynet.start(function()
	local db = redis.connect(conf)
	commands(db)
	pipelines(db)
	concurrent(db)
	watching(db)
	authenticated()
	broken_servers()
	-- a server that drops the connection: the waiting request fails, the next reconnects
	local id = db:client "id"
	local killer = redis.connect(conf)
	killer:client("kill", "id", id)
	local ok = pcall(db.get, db, "A")
	check.ok("the request on a killed connection returned", ok ~= nil)
	check.eq("the next request reconnects", db:get "A", "world")
	killer:disconnect()
	db:disconnect()
	check.done()
end)
