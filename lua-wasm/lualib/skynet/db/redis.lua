-- skynet.db.redis: a Redis client with skynet's API, over skynet.socketchannel (order
-- mode: replies come back in the order requests went out, so many coroutines may share
-- one connection).
--
--   local db = redis.connect { host =, port = 6379, auth =, username =, db =, overload = }
--   db:set("k", "v"); db:get "k"; db:hmset("h", {...}) -- any command, by its name
--   db:exists(key), db:sismember(key, member)            -- booleans
--   db:pipeline({ {"set", "a", 1}, {"get", "a"} } [, results])
--   db:disconnect()
--   local w = redis.watch(conf); w:subscribe "c"; w:psubscribe "p.*"; w:message()
--
-- Replies (RESP2): a status is its text, an integer a Lua integer, a bulk string a Lua
-- string (nil for a null one), an array a Lua array; a Redis error raises its text.

local socketchannel = require "skynet.socketchannel"

local tostring = tostring
local tonumber = tonumber
local type = type
local select = select
local setmetatable = setmetatable
local sbyte = string.byte
local ssub = string.sub
local supper = string.upper

local redis = {}

---------------------------------------------------------------------------------------------
-- replies

local read_reply

-- one reader per reply type, by its first byte
local reader = {}

-- Redis's own limit on a bulk string (proto-max-bulk-len), and how deep arrays may nest
local MAX_BULK = 512 * 1024 * 1024
local MAX_DEPTH = 64

reader[43] = function(_, line) -- '+' status
	return true, line
end

reader[45] = function(_, line) -- '-' error
	return false, line
end

reader[58] = function(_, line) -- ':' integer
	local n = tonumber(line)
	if not n then
		error("redis: bad integer reply " .. line)
	end
	return true, n
end

reader[36] = function(so, line) -- '$' bulk string
	local n = math.tointeger(tonumber(line))
	if not n then
		error("redis: bad bulk length " .. line)
	end
	if n < 0 then
		return true, nil
	end
	if n > MAX_BULK then
		error("redis: a bulk string of " .. n .. " bytes")
	end
	return true, ssub(so:read(n + 2), 1, -3)
end

reader[42] = function(so, line, depth) -- '*' array
	local n = math.tointeger(tonumber(line))
	if not n then
		error("redis: bad array length " .. line)
	end
	if n < 0 then
		return true, nil
	end
	if depth >= MAX_DEPTH then
		error "redis: arrays nested too deep"
	end
	local items, all_ok = {}, true
	for i = 1, n do
		local ok, v = read_reply(so, depth + 1)
		if not ok then
			-- as skynet's: the request raises the array, errors in place
			all_ok = false
		end
		items[i] = v
	end
	return all_ok, items
end

-- One reply (`depth`: how deep in arrays it is, nil at the top).
function read_reply(so, depth)
	local line = so:readline "\r\n"
	local f = reader[sbyte(line)]
	if not f then
		-- not RESP2: the stream can't be followed any further (the channel drops it)
		error("redis: unexpected reply " .. string.format("%q", ssub(line, 1, 32)))
	end
	return f(so, ssub(line, 2), depth or 0)
end

local function read_boolean(so)
	local ok, result = read_reply(so)
	if not ok then
		-- (skynet's raises `true` here: the error's text would be lost)
		return false, result
	end
	return true, result ~= 0
end

---------------------------------------------------------------------------------------------
-- requests: RESP arrays of bulk strings, built as a table of strings the socket sends
-- joined

-- "*<n+1>\r\n$<len>\r\n<NAME>\r\n" for a command name and n arguments
local heads = {}

local function head(name, n)
	local byname = heads[name]
	if not byname then
		byname = {}
		heads[name] = byname
	end
	local h = byname[n]
	if not h then
		h = "*" .. (n + 1) .. "\r\n$" .. #name .. "\r\n" .. name .. "\r\n"
		byname[n] = h
	end
	return h
end

-- appends the bulk strings of args[first..last] to parts
local function add_args(parts, k, args, first, last)
	for i = first, last do
		local v = args[i]
		if v == nil then
			error("redis: argument #" .. (i - first + 1) .. " is nil", 4)
		end
		v = tostring(v)
		parts[k + 1] = "$" .. #v .. "\r\n"
		parts[k + 2] = v
		parts[k + 3] = "\r\n"
		k = k + 3
	end
	return k
end

-- the request for command `name` with args[first..last]
local function compose(name, args, first, last)
	local parts = { head(name, last - first + 1) }
	add_args(parts, 1, args, first, last)
	return parts
end

-- the request for command `name` called as skynet's: (), (table of arguments) or (...)
local function compose_call(name, v, ...)
	if v == nil and select("#", ...) == 0 then
		return head(name, 0)
	elseif type(v) == "table" then
		return compose(name, v, 1, v.n or #v)
	end
	local args = { v, ... }
	return compose(name, args, 1, select("#", ...) + 1)
end

---------------------------------------------------------------------------------------------
-- connections

local command = {}
local meta = { __index = command }

-- AUTH (with a username on Redis 6 ACLs) and SELECT after every (re)connect
local function login(conf)
	local auth, db = conf.auth, conf.db
	if auth == nil and db == nil then
		return nil
	end
	return function(so)
		if auth then
			if conf.username then
				so:request(compose_call("AUTH", conf.username, auth), read_reply)
			else
				so:request(compose_call("AUTH", auth), read_reply)
			end
		end
		if db then
			so:request(compose_call("SELECT", db), read_reply)
		end
	end
end

-- Connects (one try; raises when the server cannot be reached) and returns the client.
function redis.connect(conf)
	local channel = socketchannel.channel {
		host = conf.host,
		port = conf.port or 6379,
		auth = login(conf),
		nodelay = true,
		overload = conf.overload,
	}
	channel:connect(true)
	return setmetatable({ channel }, meta)
end

function command:disconnect()
	self[1]:close()
	setmetatable(self, nil)
end

-- any other method is the Redis command of that name
setmetatable(command, { __index = function(t, k)
	local name = supper(k)
	local f = function(self, ...)
		return self[1]:request(compose_call(name, ...), read_reply)
	end
	t[k] = f
	return f
end })

function command:exists(key)
	return self[1]:request(compose_call("EXISTS", key), read_boolean)
end

function command:sismember(key, value)
	return self[1]:request(compose_call("SISMEMBER", key, value), read_boolean)
end

-- Sends every op ({name, args...}) at once. With `results`, appends {ok =, out =} for each
-- reply to it and returns it; without, returns the last reply (raising if it is an error).
function command:pipeline(ops, results)
	assert(ops and #ops > 0, "pipeline is null")
	local parts, k = {}, 0
	for _, op in ipairs(ops) do
		k = k + 1
		parts[k] = head(supper(op[1]), #op - 1)
		k = add_args(parts, k, op, 2, #op)
	end
	local count = #ops
	if results then
		return self[1]:request(parts, function(so)
			for _ = 1, count do
				local ok, out = read_reply(so)
				results[#results + 1] = { ok = ok, out = out }
			end
			return true, results
		end)
	end
	return self[1]:request(parts, function(so)
		local ok, out
		for _ = 1, count do
			ok, out = read_reply(so)
		end
		return ok, out
	end)
end

---------------------------------------------------------------------------------------------
-- watch: a connection in subscriber mode

local watch = {}
local watchmeta = {
	__index = watch,
	__gc = function(self)
		self.__sock:close()
	end,
}

-- after every (re)connect: log in, then subscribe again to what was subscribed
local function watch_login(conf, obj)
	local auth = login(conf)
	return function(so)
		if auth then
			auth(so)
		end
		for pattern in pairs(obj.__psubscribe) do
			so:request(compose_call("PSUBSCRIBE", pattern))
		end
		for channel in pairs(obj.__subscribe) do
			so:request(compose_call("SUBSCRIBE", channel))
		end
	end
end

function redis.watch(conf)
	local obj = { __subscribe = {}, __psubscribe = {} }
	local channel = socketchannel.channel {
		host = conf.host,
		port = conf.port or 6379,
		auth = watch_login(conf, obj),
		nodelay = true,
	}
	obj.__sock = channel
	channel:connect(true)
	return setmetatable(obj, watchmeta)
end

function watch:disconnect()
	self.__sock:close()
	setmetatable(self, nil)
end

-- subscribe, psubscribe, unsubscribe, punsubscribe: one request per name; the server's
-- confirmations are read by `message`
for _, name in ipairs { "subscribe", "psubscribe", "unsubscribe", "punsubscribe" } do
	local NAME = supper(name)
	watch[name] = function(self, ...)
		local so = self.__sock
		for i = 1, select("#", ...) do
			so:request(compose_call(NAME, (select(i, ...))))
		end
	end
end

-- Waits for the next published message: `data, channel` (or `data, channel, pattern` for a
-- pattern subscription), keeping track of the server's (un)subscribe confirmations.
function watch:message()
	local so = self.__sock
	while true do
		local ret = so:response(read_reply)
		local kind, channel, data, data2 = ret[1], ret[2], ret[3], ret[4]
		if kind == "message" then
			return data, channel
		elseif kind == "pmessage" then
			return data2, data, channel
		elseif kind == "subscribe" then
			self.__subscribe[channel] = true
		elseif kind == "psubscribe" then
			self.__psubscribe[channel] = true
		elseif kind == "unsubscribe" then
			self.__subscribe[channel] = nil
		elseif kind == "punsubscribe" then
			self.__psubscribe[channel] = nil
		end
	end
end

return redis
