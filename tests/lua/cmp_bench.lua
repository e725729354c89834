-- Same-run comparison with skynet (host/benches/node.rs, "vs-skynet"): the `start` service
-- of a node run unchanged by skywasm and by real skynet. The config says what to measure
-- (`cmp_mode`) and how much (`cmp_n`, `cmp_clients`); the figure is logged as
-- `CMP <mode> <figure>`:
--   calls   n sequential call round trips to a Lua echo (calls/s)
--   sends   n one-way sends to it, then a call that arrives after them (sends/s)
--   fanin   cmp_clients services each making n sequential calls to one echo (calls/s)
--   spawn   n skynet.newservice of an idle service in a row (services/s)
--   multicast  cmp_clients subscribers of one skynet.multicast channel; n publishes of a
--           short string, then the figure is deliveries (n x subscribers) per second
--   sharetable  a table of 40,000 entries (about 10 MB in Lua) shared with
--           skynet.sharetable, then cmp_clients readers each making n lookups of random
--           entries (an entry and a field of a nested table): lookups/s
--   sharemem  the same table, logs `CMP BASELINE`, starts n readers that each read 100
--           random entries, logs `CMP SPAWNED` (the runner measures memory per reader)
--   memory  logs `CMP BASELINE`, waits 2 s, spawns n idle services, logs `CMP SPAWNED`
--           (the runner measures the process's memory at both)
--   sproto_encode, sproto_decode, bson_encode, bson_decode, crypt, redis, redis_socket,
--   httpd: see their functions below
-- With `cmp_crowd = k`, k idle services are spawned before anything is measured (the
-- figure then says what a node full of services does).
local skynet = require "skynet"

local mode = skynet.getenv "cmp_mode"
local n = tonumber(skynet.getenv "cmp_n")

local function rate(count, started)
	return count * 1e9 / (skynet.hpc() - started)
end

local MEASURE = {}

-- Runs job(1) .. job(count) each in a coroutine of its own, and returns when all are done.
local function all_at_once(count, job)
	local me = coroutine.running()
	local done = 0
	for i = 1, count do
		skynet.fork(function()
			job(i)
			done = done + 1
			if done == count then
				skynet.wakeup(me)
			end
		end)
	end
	skynet.wait(me)
end

function MEASURE.calls()
	local echo = skynet.newservice("cmp_echo")
	for i = 1, 100 do
		skynet.call(echo, "lua", "ECHO", i)
	end
	local started = skynet.hpc()
	for i = 1, n do
		skynet.call(echo, "lua", "ECHO", i)
	end
	return rate(n, started)
end

function MEASURE.sends()
	local echo = skynet.newservice("cmp_echo")
	local started = skynet.hpc()
	for i = 1, n do
		skynet.send(echo, "lua", "NOTE", i)
	end
	local arrived = skynet.call(echo, "lua", "NOTES")
	assert(arrived == n, "every note arrived")
	return rate(n, started)
end

function MEASURE.fanin()
	local clients = tonumber(skynet.getenv "cmp_clients")
	local echo = skynet.newservice("cmp_echo")
	local spawned = {}
	for i = 1, clients do
		spawned[i] = skynet.newservice("cmp_client")
	end
	local started = skynet.hpc()
	all_at_once(clients, function(i)
		skynet.call(spawned[i], "lua", "RUN", echo, n)
	end)
	return rate(clients * n, started)
end

function MEASURE.spawn()
	local started = skynet.hpc()
	for _ = 1, n do
		skynet.newservice("cmp_idle")
	end
	return rate(n, started)
end

function MEASURE.multicast()
	local mc = require "skynet.multicast"
	local subscribers = tonumber(skynet.getenv "cmp_clients")
	local channel = mc.new()
	local spawned = {}
	for i = 1, subscribers do
		spawned[i] = skynet.newservice("cmp_subscriber")
		skynet.call(spawned[i], "lua", "SUB", channel.channel, n)
	end
	local started = skynet.hpc()
	for i = 1, n do
		channel:publish("tick", i)
	end
	-- every subscriber answers once it has taken all n
	for i = 1, subscribers do
		assert(skynet.call(spawned[i], "lua", "WAIT") == n)
	end
	return rate(n * subscribers, started)
end

local SHARED_ENTRIES = 40000

local function share_big_table()
	local sharetable = require "skynet.sharetable"
	local t = {}
	for i = 1, SHARED_ENTRIES do
		t[i] = { id = i, name = string.rep("x", 64) .. i, attack = i % 100, list = { i, i + 1, i + 2 } }
	end
	sharetable.loadtable("cmp", t)
end

function MEASURE.sharetable()
	share_big_table()
	local clients = tonumber(skynet.getenv "cmp_clients")
	local readers = {}
	for i = 1, clients do
		readers[i] = skynet.newservice("cmp_share_reader")
		skynet.call(readers[i], "lua", "QUERY")
	end
	local started = skynet.hpc()
	all_at_once(clients, function(i)
		skynet.call(readers[i], "lua", "READ", n, SHARED_ENTRIES)
	end)
	return rate(clients * n, started)
end

function MEASURE.sharemem()
	share_big_table()
	collectgarbage()
	skynet.error("CMP BASELINE")
	skynet.sleep(200)
	for _ = 1, n do
		local reader = skynet.newservice("cmp_share_reader")
		skynet.call(reader, "lua", "QUERY")
		skynet.call(reader, "lua", "READ", 100, SHARED_ENTRIES)
	end
	skynet.error("CMP SPAWNED")
	return n
end

function MEASURE.memory()
	skynet.error("CMP BASELINE")
	skynet.sleep(200)
	local last
	for _ = 1, n do
		last = skynet.newservice("cmp_idle")
	end
	skynet.call(last, "lua")
	skynet.error("CMP SPAWNED")
	return n
end

---------------------------------------------------------------------------------------------
-- codecs and protocol clients (issue 26): the same library calls on both runtimes

local SPROTO_SCHEMA = [[
.Person {
	name 0 : string
	id 1 : integer
	email 2 : string
	.PhoneNumber {
		number 0 : string
		type 1 : integer
	}
	phone 3 : *PhoneNumber
}
.AddressBook {
	person 0 : *Person
}
]]

-- the README's address book (83 bytes packed)
local ADDRESS_BOOK = {
	person = {
		{ name = "Alice", id = 10000, phone = { { number = "123456789", type = 1 }, { number = "87654321", type = 2 } } },
		{ name = "Bob", id = 20000, phone = { { number = "01234567890", type = 3 } } },
	},
}

local function sproto_object()
	local sproto = require "sproto"
	return sproto.parse(SPROTO_SCHEMA)
end

-- n encodes and packs of the address book (messages/s)
function MEASURE.sproto_encode()
	local sp = sproto_object()
	local started = skynet.hpc()
	for _ = 1, n do
		sp:pencode("AddressBook", ADDRESS_BOOK)
	end
	return rate(n, started)
end

-- n unpacks and decodes of it (messages/s)
function MEASURE.sproto_decode()
	local sp = sproto_object()
	local packed = sp:pencode("AddressBook", ADDRESS_BOOK)
	local started = skynet.hpc()
	for _ = 1, n do
		sp:pdecode("AddressBook", packed)
	end
	return rate(n, started)
end

-- n rounds of a login's crypt work (calls/s): a DH exchange and secret, an hmac64 of a
-- challenge, DES of 64 bytes both ways, base64 and sha1 of 1 KiB
function MEASURE.crypt()
	local crypt = require "skynet.crypt"
	local key = crypt.randomkey()
	local text64 = string.rep("x", 64)
	local text1k = string.rep("y", 1024)
	local started = skynet.hpc()
	for _ = 1, n do
		local secret = crypt.dhsecret(crypt.dhexchange(key), key)
		crypt.hmac64(key, secret)
		crypt.desdecode(secret, crypt.desencode(secret, text64))
		crypt.base64decode(crypt.base64encode(text1k))
		crypt.sha1(text1k)
	end
	return rate(n, started)
end

-- a game's player record as a MongoDB document: scalars, an object id, a date, a nested
-- document and an array of documents
local function player_record(bson)
	local items = {}
	for i = 1, 8 do
		items[i] = { id = i, count = i * 3, name = "item" .. i }
	end
	return {
		_id = bson.objectid "0123456789abcdef01234567",
		name = "player one",
		level = 42,
		exp = 123456789012,
		gold = 99.5,
		online = true,
		login = bson.date(1700000000),
		pos = { x = 10.25, y = -3.5, map = "town" },
		items = items,
	}
end

-- n bson.encode of it (documents/s)
function MEASURE.bson_encode()
	local bson = require "bson"
	local record = player_record(bson)
	local started = skynet.hpc()
	for _ = 1, n do
		bson.encode(record)
	end
	return rate(n, started)
end

-- n bson.decode of it (documents/s)
function MEASURE.bson_decode()
	local bson = require "bson"
	local doc = bson.encode(player_record(bson))
	local started = skynet.hpc()
	for _ = 1, n do
		bson.decode(doc)
	end
	return rate(n, started)
end

-- n SET and GET round trips through skynet.db.redis (round trips/s)
function MEASURE.redis()
	local redis = require "skynet.db.redis"
	local db = redis.connect { host = "127.0.0.1", port = tonumber(skynet.getenv "cmp_port") }
	for i = 1, 100 do
		db:set("warm", i)
	end
	local started = skynet.hpc()
	for i = 1, n do
		db:set("k" .. (i % 100), i)
		db:get("k" .. (i % 100))
	end
	local figure = rate(2 * n, started)
	db:disconnect()
	return figure
end

-- n PING round trips to the same redis-server on a bare socket: socket.write, then
-- socket.readline (round trips/s); what the redis row costs without the driver and
-- socketchannel
function MEASURE.redis_socket()
	local socket = require "skynet.socket"
	local fd = assert(socket.open("127.0.0.1", tonumber(skynet.getenv "cmp_port")))
	for _ = 1, 100 do
		socket.write(fd, "PING\r\n")
		socket.readline(fd, "\r\n")
	end
	local started = skynet.hpc()
	for _ = 1, 2 * n do
		socket.write(fd, "PING\r\n")
		assert(socket.readline(fd, "\r\n") == "+PONG")
	end
	local figure = rate(2 * n, started)
	socket.close(fd)
	return figure
end

-- an http.httpd server on cmp_port (keep-alive: requests until the client closes); logs
-- `CMP httpd READY` and the runner drives the load, then reports the figure itself
function MEASURE.httpd()
	local socket = require "skynet.socket"
	local httpd = require "http.httpd"
	local sockethelper = require "http.sockethelper"
	local listener = socket.listen("127.0.0.1", tonumber(skynet.getenv "cmp_port"))
	socket.start(listener, function(fd)
		skynet.fork(function()
			socket.start(fd)
			-- (skynet's httpd writes a response in several writes: without nodelay, Nagle's
			-- algorithm and delayed ACKs hold each one back)
			require("skynet.socketdriver").nodelay(fd)
			local read, write = sockethelper.readfunc(fd), sockethelper.writefunc(fd)
			while true do
				local code, url = httpd.read_request(read, 8192)
				if not code then
					break
				end
				if not httpd.write_response(write, code, "hello " .. url) then
					break
				end
			end
			socket.close(fd)
		end)
	end)
	skynet.error("CMP httpd READY")
	skynet.wait(coroutine.running())
end

skynet.start(function()
	skynet.fork(function()
		for _ = 1, tonumber(skynet.getenv "cmp_crowd" or 0) do
			skynet.newservice("cmp_idle")
		end
		local figure = assert(MEASURE[mode], mode)()
		skynet.error(string.format("CMP %s %.1f", mode, figure))
	end)
end)
