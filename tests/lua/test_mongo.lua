-- skynet.db.mongo against the tests' MongoDB protocol peer (tests/blackbox/mongo_peer.rs: no
-- MongoDB server installs here), which reads every request with MongoDB's own Rust BSON and
-- checks SCRAM-SHA-1 as mongod does.
local skynet = require "skynet"
local mongo = require "skynet.db.mongo"
local bson = require "bson"
local check = require "check"

local port = tonumber(skynet.getenv "mongo_port")

local function client()
	return mongo.client { host = "127.0.0.1", port = port, username = "admin", password = 123456, authdb = "admin" }
end

local function all(cursor)
	local docs = {}
	while cursor:hasNext() do
		docs[#docs + 1] = cursor:next()
	end
	return docs
end

local function field(docs, name)
	local values = {}
	for i, d in ipairs(docs) do
		values[i] = tostring(d[name])
	end
	return table.concat(values, ",")
end

skynet.start(function()
	-- authentication
	local anonymous = mongo.client { host = "127.0.0.1", port = port }
	check.raises("without a login, data commands are refused", "requires authentication",
		anonymous.game.users.findOne, anonymous.game.users, { x = 1 })
	check.eq("db:auth logs in by SCRAM-SHA-1", anonymous.admin:auth("admin", 123456), true)
	check.eq("and then they work", anonymous.game.users:findOne { x = 1 }, nil)
	check.eq("a wrong password fails", anonymous.admin:auth("admin", "wrong"), false)
	anonymous:disconnect()
	check.raises("a client with a wrong password does not connect", "[Error: socket]",
		mongo.client, { host = "127.0.0.1", port = port, username = "admin", password = "wrong" })

	local c = client()
	check.eq("tostring of a client", tostring(c), "[mongo client : 127.0.0.1:" .. port .. "]")
	local db = c.game
	check.eq("tostring of a database", tostring(db), "[mongo db : game]")
	local users = db.users
	check.eq("tostring of a collection", tostring(users), "[mongo collection : game.users]")
	check.eq("sub-collections", db.users.archive.full_name, "game.users.archive")
	users:drop()

	-- inserts and a unique index
	local ok, err, r = users:safe_insert { name = "ann", level = 3 }
	check.ok("safe_insert", ok and r.n == 1, err)
	users:ensureIndex({ name = 1 }, { unique = true, name = "name_index" })
	ok, err = users:safe_insert { name = "ann", level = 9 }
	check.ok("a duplicate key is refused", not ok and err:find "duplicate key error", err)
	ok, err, r = users:safe_batch_insert { { name = "bob", level = 5 }, { name = "cid", level = 1 }, { name = "dee", level = 5 } }
	check.ok("safe_batch_insert", ok and r.n == 3, err)
	users:insert { name = "eve", level = 7 } -- no reply (moreToCome)
	users:batch_insert { { name = "fay", level = 2 } }
	check.eq("count after inserts without replies", users:find():count(), 6)
	local ann = users:findOne { name = "ann" }
	check.eq("findOne", ann.level, 3)
	check.eq("an _id was given", select(1, bson.type(ann._id)), "objectid")
	check.eq("findOne with a projection", users:findOne({ name = "bob" }, { level = 1, _id = 0 }).name, nil)

	-- cursors: sort on two keys, skip, limit, batches over getMore
	local docs = all(users:find { level = { ["$gt"] = 1 } }:sort({ level = -1 }, { name = 1 }))
	check.eq("find, sorted by two keys", field(docs, "name"), "eve,bob,dee,ann,fay")
	docs = all(users:find():sort { level = 1 }:skip(1):limit(3))
	check.eq("skip and limit", field(docs, "name"), "fay,ann,bob")
	local cursor = users:find():sort { name = 1 }:batchSize(2)
	docs = all(cursor)
	check.eq("batches of two, fetched with getMore", field(docs, "name"), "ann,bob,cid,dee,eve,fay")
	check.eq("an exhausted cursor has no next", cursor:hasNext(), false)
	check.raises("next before hasNext", "Call hasNext first", cursor.next, users:find())
	local limited = users:find { level = { ["$gt"] = 1 } }:skip(1):limit(1)
	check.eq("count ignores skip and limit", limited:count(), 5)
	check.eq("count(true) applies them", limited:count(true), 1)
	cursor = users:find():batchSize(2)
	check.eq("a cursor open on the server", cursor:hasNext(), true)
	cursor:close()
	check.eq("close kills it", cursor.__cursor, nil)
	check.eq("an empty collection's cursor", db.nothing:find():hasNext(), false)

	-- updates and deletes
	ok, err = users:safe_update({ name = "ann" }, { ["$set"] = { level = 4 } })
	check.ok("safe_update with $set", ok, err)
	check.eq("updated", users:findOne({ name = "ann" }).level, 4)
	ok, err, r = users:safe_update({ level = 5 }, { ["$inc"] = { level = 1 } }, false, true)
	check.ok("a multi update", ok and r.n == 2, err)
	ok, err, r = users:safe_update({ name = "gus" }, { ["$set"] = { level = 1 } }, true)
	check.ok("an upsert", ok and users:findOne({ name = "gus" }).level == 1, err)
	ok, err = users:safe_update({ name = "bob" }, { ["$set"] = { name = "ann" } })
	check.ok("an update breaking the unique index", not ok and err:find "duplicate key", err)
	users:update({ name = "fay" }, { ["$set"] = { level = 8 } })
	check.eq("update without a reply", users:findOne({ name = "fay" }).level, 8)
	ok, err, r = users:safe_batch_update { { query = { name = "cid" }, update = { ["$set"] = { level = 2 } } },
		{ query = { name = "dee" }, update = { ["$set"] = { level = 3 } } } }
	check.ok("safe_batch_update", ok and r.n == 2, err)
	ok, err, r = users:safe_delete({ level = { ["$lt"] = 3 } }, true)
	check.ok("safe_delete of one", ok and r.n == 1, err)
	ok, err, r = users:safe_batch_delete { { name = "gus" }, { name = "eve" } }
	check.ok("safe_batch_delete", ok and r.n == 2, err)
	users:delete { name = "fay" }
	check.eq("delete without a reply", users:findOne { name = "fay" }, nil)
	check.eq("what is left", field(all(users:find():sort { name = 1 }), "name"), "ann,bob,dee")

	-- findAndModify, aggregate, runCommand
	r = users:findAndModify { query = { name = "ann" }, update = { ["$inc"] = { level = 10 } }, new = true }
	check.eq("findAndModify returns the new document", r.value.level, 14)
	r = users:findAndModify { query = { name = "nobody" }, remove = true }
	check.eq("findAndModify of nothing", r.value, mongo.null)
	local pipeline = { { ["$group"] = { _id = mongo.null, total = { ["$sum"] = "$level" }, n = { ["$sum"] = 1 } } } }
	r = db:runCommand("aggregate", "users", "pipeline", pipeline, "cursor", {})
	check.eq("runCommand aggregate $group/$sum", r.cursor.firstBatch[1].total, 14 + 6 + 3)
	local agg = users:aggregate({ { ["$match"] = { level = { ["$gt"] = 3 } } } }, { cursor = {} }):sort { level = -1 }
	check.eq("an aggregate cursor", field(all(agg), "name"), "ann,bob")
	check.eq("its count", users:aggregate { { ["$match"] = { level = { ["$gt"] = 3 } } } }:count(), 2)
	r = db:runCommand("noSuchCommand")
	check.eq("an unknown command is the server's error", r.ok, 0.0)

	-- indexes
	r = users:createIndexes({ { level = 1 }, { name = -1 } }, { "level", unique = false })
	check.eq("createIndexes", r.ok, 1.0)
	check.eq("dropIndex by name", users:dropIndex("level_1_name_-1").ok, 1.0)
	check.eq("dropIndex of a missing one", users:dropIndex("nope").ok, 0.0)
	check.eq("dropIndex *", users:dropIndex("*").ok, 1.0)
	ok = users:safe_insert { name = "ann" }
	check.eq("without the unique index, a second ann", ok, true)

	-- a TTL index: the peer expires at every command, mongod every minute
	local sessions = db.sessions
	sessions:drop()
	sessions:ensureIndex({ at = 1 }, { expireAfterSeconds = 1 })
	sessions:safe_insert { at = bson.date(os.time() - 5), who = "old" }
	sessions:safe_insert { at = bson.date(os.time() + 3600), who = "new" }
	check.eq("an expired document is gone", field(all(sessions:find()), "who"), "new")

	-- types round-trip through the server
	local sample = { i = 1, big = 1 << 40, f = 0.5, s = "text", b = true, n = mongo.null, arr = { 1, "x" },
		oid = bson.objectid "0123456789abcdef01234567", when = bson.date(1700000000), bin = bson.binary "\0\1\2",
		ts = bson.timestamp(1700000000, 3), re = bson.regex("^a", "i"), nested = { deep = { er = "yes" } } }
	db.types:drop()
	db.types:safe_insert(sample)
	local back = db.types:findOne { s = "text" }
	for k, v in pairs(sample) do
		if type(v) ~= "table" then
			check.eq("round trip of " .. k, back[k], v)
		end
	end
	check.eq("round trip of an array", back.arr[2], "x")
	check.eq("round trip of nesting", back.nested.deep.er, "yes")

	-- misbehaving servers: the request fails, the next one reconnects (and logs in again)
	check.raises("a connection closed before the reply", "[Error: socket]", db.runCommand, db, "skywasmHangUp")
	check.eq("then the next command works", users:findOne({ name = "bob" }).level, 6)
	check.raises("a reply that is no OP_MSG", "Unsupported opcode:1", db.runCommand, db, "skywasmGarbage")
	check.eq("the next command works again", users:findOne({ name = "bob" }).level, 6)
	check.raises("a malformed document in a reply", "Invalid bson string", db.runCommand, db, "skywasmBadBson")
	check.eq("and again", users:findOne({ name = "dee" }).level, 3)

	-- many coroutines share the connection
	local done, wrong = 0, 0
	for i = 1, 50 do
		skynet.fork(function()
			local got = users:findOne { name = "bob" }
			if not got or got.level ~= 6 then
				wrong = wrong + 1
			end
			done = done + 1
		end)
	end
	while done < 50 do
		skynet.sleep(1)
	end
	check.eq("50 concurrent requests all answered right", wrong, 0)
	-- transactions (skynet's extension)
	mongo.enable "transaction"
	local bank = db.bank
	bank:drop()
	bank:safe_insert { who = "a", money = 10 }
	local err = db:run_transaction(function()
		assert(bank:safe_update({ who = "a" }, { ["$inc"] = { money = -5 } }))
		assert(bank:safe_insert { who = "b", money = 5 })
		bank:insert { who = "c", money = 0 } -- no reply, and no write concern inside
	end)
	check.eq("a transaction commits", err, nil)
	check.eq("what it did stays", field(all(bank:find():sort { who = 1 }), "money"), "5,5,0")
	err = db:run_transaction(function()
		bank:safe_update({ who = "a" }, { ["$inc"] = { money = -5 } })
		error "changed my mind"
	end)
	check.ok("a transaction whose function raises is aborted, saying why",
		type(err) == "string" and err:find "changed my mind", err)
	check.eq("and nothing it did stays", bank:findOne({ who = "a" }).money, 5)
	check.eq("outside a transaction, commands carry no session", bank:findOne({ who = "b" }).money, 5)
	check.eq("an empty transaction", db:run_transaction(function() end), nil)

	check.eq("logout", c:logout(), true)
	c:disconnect()
	check.done()
end)
