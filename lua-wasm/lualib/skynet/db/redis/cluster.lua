-- skynet.db.redis.cluster: a Redis Cluster client with skynet's API, over skynet.db.redis
-- (one connection per node, opened when first needed and shared by the service's
-- coroutines).
--
--   local rediscluster = require "skynet.db.redis.cluster"
--   local db = rediscluster.new({ { host =, port = }, ... },  -- or one { host =, port = }
--       { auth =, username =, db = 0, read_slave =, max_connections = 256 },
--       onmessage)                                 -- onmessage(data, channel [, pattern])
--   db:set("k", "v"); db:get "k"; db:hmset("h", ...) -- any command, by its name
--   db:eval(script, n, key1, ...)                    -- the keys must share a slot
--   db:subscribe "c"; db:psubscribe "p*"; db:publish("c", "hi")
--   db:keyslot(key); db:get_connection_by_slot(slot):pipeline {...}
--   db:get_random_connection(); db:flush_slots_cache(); db:close_all_connection()
--   db.connections                                   -- "host:port" -> a skynet.db.redis
--   db:close()                                       -- (skywasm's) subscriptions too
--
-- A command goes to the master of its first argument's slot (skynet's rule: when that
-- argument is no key, the node it reaches still runs it or redirects). The slot map comes
-- from CLUSTER SLOTS. MOVED sends the command again to the node named, points the slot
-- at it and reloads the map before the next command; ASK sends that one command, after
-- ASKING, to the node named; a lost connection is opened again (with read_slave, a replica
-- of an unreachable master serves reads). After 16 tries a command raises rather than
-- keep going round.

local skynet = require "skynet"
local redis = require "skynet.db.redis"
local crc16 = require "skynet.db.redis.crc16"
local socketchannel = require "skynet.socketchannel"

local type = type
local tostring = tostring
local pairs = pairs
local next = next
local select = select
local ipairs = ipairs
local pcall = pcall
local error = error
local rawget = rawget
local setmetatable = setmetatable
local tointeger = math.tointeger
local min = math.min
local tonumber = tonumber
local random = math.random
local sfind = string.find
local ssub = string.sub
local smatch = string.match
local slower = string.lower
local tpack = table.pack
local tunpack = table.unpack

local SLOTS = 16384
local MAX_TRIES = 16

local rediscluster = {}

local client = {}
local client_meta = { __index = client }

---------------------------------------------------------------------------------------------
-- helpers

-- Runs f(...) for `key` once at a time: coroutines asking for the same key meanwhile wait
-- and share its results (or its error), so a node gets one connection, not one per
-- coroutine that wanted it first.
local function once(self, key, f, ...)
	local pending = self.__pending
	local task = pending[key]
	if task then
		local token = {}
		task[#task + 1] = token
		skynet.wait(token)
	else
		task = {}
		pending[key] = task
		task.result = tpack(pcall(f, ...))
		pending[key] = nil
		for i = 1, #task do
			skynet.wakeup(task[i])
		end
	end
	local r = task.result
	if not r[1] then
		error(r[2], 0)
	end
	return tunpack(r, 2, r.n)
end

local function nodename(host, port)
	return tostring(host) .. ":" .. tostring(port)
end

-- Closes a connection that failed and stops handing it out, so the next try connects
-- again (or, when that fails, turns to a replica or another node).
local function forget(self, conn)
	for name, c in pairs(self.connections) do
		if c == conn then
			self.connections[name] = nil
			pcall(conn.disconnect, conn)
			return
		end
	end
end

-- The kind ("MOVED" or "ASK"), slot, host and port of a redirection error; nil for
-- another error.
local function redirection(err)
	if type(err) ~= "string" then
		return nil
	end
	-- (the host may be an IPv6 address, colons and all, or empty: "the node you asked")
	local kind, slot, host, port = smatch(err, "^(%u+) (%d+) (%S*):(%d+)$")
	if kind ~= "MOVED" and kind ~= "ASK" then
		return nil
	end
	return kind, tointeger(tonumber(slot)), host, tointeger(tonumber(port))
end

-- whether err says the connection failed (rather than the server refusing the command)
local function connection_lost(err)
	return err == socketchannel.error
		or (type(err) == "string" and sfind(err, "the channel is closed", 1, true) ~= nil)
end

---------------------------------------------------------------------------------------------
-- the client

function rediscluster.new(startup_nodes, opt, onmessage)
	if type(startup_nodes) ~= "table" then
		error("rediscluster.new: startup nodes expected, got " .. type(startup_nodes), 2)
	end
	if #startup_nodes == 0 then
		startup_nodes = { startup_nodes }
	end
	for i, node in ipairs(startup_nodes) do
		if type(node) ~= "table" or node.host == nil or tointeger(tonumber(node.port)) == nil then
			error("rediscluster.new: startup node #" .. i .. " needs a host and a port", 2)
		end
	end
	opt = opt or {}
	if opt.db ~= nil and tonumber(opt.db) ~= 0 then
		-- (a cluster node refuses SELECT of any other: every connection would fail to log in)
		error("rediscluster.new: a Redis Cluster has only db 0, not " .. tostring(opt.db), 2)
	end
	local self = setmetatable({
		startup_nodes = startup_nodes,
		max_connections = opt.max_connections or 256,
		connections = {},
		opt = opt,
		refresh_table_asap = false,
		slots = {},
		nodes = {},
		__onmessage = onmessage,
		__watching = {},
		__pending = {},
	}, client_meta)
	local ok, err = self:initialize_slots_cache()
	if not ok then
		-- (not raised, as skynet's: the commands raise while no node answers)
		skynet.error("rediscluster: no node answered CLUSTER SLOTS: " .. tostring(err))
	end
	return self
end

function client:set_node_name(node)
	if not node.name then
		node.name = nodename(node.host, node.port)
	end
end

-- the connection conf of a node: the client's login; SELECT only when a db is given
local function link_conf(self, node)
	local opt = self.opt
	return {
		host = node.host,
		port = node.port,
		auth = opt.auth,
		username = opt.username,
		db = opt.db,
	}
end

-- A new connection to `node` (raises when it cannot be reached).
function client:get_redis_link(node)
	return redis.connect(link_conf(self, node))
end

-- At the limit of connections, closes one (any) to make room for another.
function client:close_existing_connection()
	local count = 0
	for _ in pairs(self.connections) do
		count = count + 1
	end
	if count > 0 and count >= self.max_connections then
		local name, conn = next(self.connections)
		self.connections[name] = nil
		pcall(conn.disconnect, conn)
	end
end

function client:close_all_connection()
	local connections = self.connections
	self.connections = {}
	for _, conn in pairs(connections) do
		pcall(conn.disconnect, conn)
	end
end

-- The connection to `node` ({host =, port =}), opened if there is none (raises when the
-- node cannot be reached).
function client:get_connection(node)
	self:set_node_name(node)
	local name = node.name
	local conn = self.connections[name]
	if conn then
		return conn
	end
	return once(self, name, function()
		local c = self.connections[name]
		if not c then
			self:close_existing_connection()
			c = self:get_redis_link(node)
			self.connections[name] = c
		end
		return c
	end)
end

-- Closes every connection and subscription (skywasm's; skynet's client has no close).
function client:close()
	local watching = self.__watching
	self.__watching = {}
	for _, w in pairs(watching) do
		pcall(w.disconnect, w)
	end
	self:close_all_connection()
end

---------------------------------------------------------------------------------------------
-- slots

-- a node of a CLUSTER SLOTS entry: { host, port, id, ... }
local function slots_node(entry, asked)
	local host = type(entry) == "table" and entry[1]
	local port = type(entry) == "table" and tointeger(tonumber(entry[2]))
	if type(host) ~= "string" or not port then
		error "rediscluster: a CLUSTER SLOTS reply without a host and a port"
	end
	if host == "" or host == "?" then
		-- the node asked does not know the address it is reached at: the one we used
		host = asked.host
	end
	return { host = host, port = port, name = nodename(host, port) }
end

-- The slot map and the masters (each with its `slaves`) from node `asked`.
local function fetch_slots(self, asked)
	local ranges = self:get_connection(asked):cluster "slots"
	local slots, nodes, byname = {}, {}, {}
	for _, range in ipairs(ranges) do
		local first, last = tointeger(tonumber(range[1])), tointeger(tonumber(range[2]))
		if not (first and last and first >= 0 and last < SLOTS and first <= last) then
			error("rediscluster: a CLUSTER SLOTS range " .. tostring(range[1]) .. "-" .. tostring(range[2]))
		end
		local master = slots_node(range[3], asked)
		local known = byname[master.name]
		if known then
			-- (a master of several ranges has one entry for each)
			master = known
		else
			byname[master.name] = master
			nodes[#nodes + 1] = master
			local slaves = {}
			for i = 4, #range do
				slaves[#slaves + 1] = slots_node(range[i], asked)
			end
			master.slaves = slaves
		end
		for slot = first, last do
			slots[slot] = master
		end
	end
	return slots, nodes
end

-- the startup nodes, then the masters known from before (they may be the only ones left)
local function load_slots(self)
	local tried, err = {}, "no node to ask"
	for _, list in ipairs { self.startup_nodes, self.nodes } do
		for _, node in ipairs(list) do
			self:set_node_name(node)
			if not tried[node.name] then
				tried[node.name] = true
				local ok, slots, nodes = pcall(fetch_slots, self, node)
				if ok then
					self.slots, self.nodes = slots, nodes
					self.refresh_table_asap = false
					return true
				end
				err = node.name .. ": " .. tostring(slots)
			end
		end
	end
	return false, err
end

-- Loads the slot map from the first node that answers; true, or false and why none did
-- (the map is kept as it was then). Never raises.
function client:initialize_slots_cache()
	return once(self, "CLUSTER SLOTS", load_slots, self)
end

-- Forgets the slot map: the next commands go to any node and follow its redirections.
function client:flush_slots_cache()
	self.slots = {}
end

-- The slot of `key`: CRC16 of the key, or of its hash tag (what is between the first "{"
-- and the first "}" after it, when that is not empty), modulo 16384.
function client:keyslot(key)
	if type(key) ~= "string" then
		key = tostring(key)
	end
	local open = sfind(key, "{", 1, true)
	if open then
		local close = sfind(key, "}", open + 1, true)
		if close and close > open + 1 then
			key = ssub(key, open + 1, close - 1)
		end
	end
	return crc16(key) % SLOTS
end

-- commands that are about one node, not a key: there is no telling which node is meant
local NOT_ROUTED = {
	info = true,
	multi = true,
	exec = true,
	slaveof = true,
	replicaof = true,
	config = true,
	shutdown = true,
}

-- scripts: script, numkeys, keys..., args...
local SCRIPTS = {
	eval = true,
	evalsha = true,
	eval_ro = true,
	evalsha_ro = true,
	fcall = true,
	fcall_ro = true,
}

-- The key a command is routed by (argv[1] is the command's name, in lower case); nil when
-- it cannot be routed.
function client:get_key_from_command(cmd, argv)
	if NOT_ROUTED[cmd] then
		return nil
	end
	if SCRIPTS[cmd] then
		local numkeys = tointeger(tonumber(argv[3])) or 0
		local slot
		-- (a numkeys past the arguments is the server's to refuse, not a loop of ours)
		for i = 4, min(3 + numkeys, argv.n) do
			local s = self:keyslot(argv[i])
			if slot == nil then
				slot = s
			elseif s ~= slot then
				error(cmd .. " - all keys must map to the same key slot", 3)
			end
		end
		-- (with no keys, as skynet's: routed by the first argument, if there is one)
		return argv[4]
	end
	return argv[2]
end

---------------------------------------------------------------------------------------------
-- connections by slot

-- A connection to a node that answers PING, the known masters and the startup nodes tried
-- in random order; raises when none does.
function client:get_random_connection()
	local candidates, seen = {}, {}
	for _, list in ipairs { self.nodes, self.startup_nodes } do
		for _, node in ipairs(list) do
			self:set_node_name(node)
			if not seen[node.name] then
				seen[node.name] = true
				candidates[#candidates + 1] = node
			end
		end
	end
	for i = #candidates, 2, -1 do
		local j = random(i)
		candidates[i], candidates[j] = candidates[j], candidates[i]
	end
	local err = "no node known"
	for _, node in ipairs(candidates) do
		local ok, conn = pcall(self.get_connection, self, node)
		if ok then
			local pinged, pong = pcall(conn.ping, conn)
			if pinged and pong == "PONG" then
				return conn
			end
			err = node.name .. ": " .. tostring(pong)
			forget(self, conn)
		else
			err = node.name .. ": " .. tostring(conn)
		end
	end
	error("rediscluster: can't reach a single startup node (last error: " .. err .. ")", 0)
end

-- A replica of `master` that can be reached, in READONLY mode; nil if none.
local function replica_connection(self, master)
	local slaves = master.slaves
	local n = slaves and #slaves or 0
	local first = n > 0 and random(n) or 1
	for k = 0, n - 1 do
		local replica = slaves[(first + k - 1) % n + 1]
		local ok, conn = pcall(self.get_connection, self, replica)
		-- (READONLY every time: a connection that was lost and opened again forgot it)
		if ok and pcall(conn.readonly, conn) then
			return conn
		end
	end
end

-- The connection for `slot` and, when its master could not be reached, that master's name.
local function slot_connection(self, slot)
	local node = self.slots[slot]
	if not node then
		return self:get_random_connection()
	end
	local ok, conn = pcall(self.get_connection, self, node)
	if ok then
		return conn
	end
	if self.opt.read_slave then
		local replica = replica_connection(self, node)
		if replica then
			return replica, node.name
		end
	end
	return self:get_random_connection(), node.name
end

-- The connection to the master of `slot` (with read_slave, a replica when the master
-- cannot be reached); another node when the slot's is not known or cannot be reached.
function client:get_connection_by_slot(slot)
	return (slot_connection(self, slot))
end

---------------------------------------------------------------------------------------------
-- commands

local WATCH_COMMANDS = {
	subscribe = true,
	psubscribe = true,
	unsubscribe = true,
	punsubscribe = true,
}

-- commands skynet.db.redis answers with a boolean (as a pipeline's reply, an integer)
local BOOLEAN = {
	exists = true,
	sismember = true,
}

-- name, args... with the arguments given as values or as one table
local function flatten(name, ...)
	local n = select("#", ...)
	local first = ...
	if n == 1 and type(first) == "table" then
		local argv = { name, tunpack(first, 1, first.n or #first) }
		argv.n = (first.n or #first) + 1
		return argv
	end
	return tpack(name, ...)
end

-- the host of the node a connection goes to
local function host_of(self, conn)
	for name, c in pairs(self.connections) do
		if c == conn then
			return smatch(name, "^(.*):%d+$")
		end
	end
end

-- Sends a command to the node of its key, following redirections.
function client:call(name, ...)
	if type(name) ~= "string" then
		error("rediscluster: a command name expected, got " .. type(name), 2)
	end
	local cmd = slower(name)
	if cmd == "pipeline" then
		error("rediscluster: a pipeline needs one node: db:get_connection_by_slot(slot):pipeline(ops)", 2)
	end
	local argv = flatten(name, ...)
	local key = self:get_key_from_command(cmd, argv)
	if key == nil then
		error("rediscluster: no way to dispatch this command to Redis Cluster: " .. name, 2)
	end
	local slot = self:keyslot(key)
	if WATCH_COMMANDS[cmd] then
		-- (a cluster forwards every publication to every node: any node's subscription works)
		local w = self:get_watch_connection_by_slot(slot)
		return w[cmd](w, tunpack(argv, 2, argv.n))
	end
	if self.refresh_table_asap then
		self:initialize_slots_cache()
	end
	-- after a redirection, the node it named, where the next try goes (the command's
	-- first argument may not be its key: routing by it again could go round forever);
	-- after an ASK, with ASKING first
	local target, asking = nil, false
	local err, unreachable
	for try = 1, MAX_TRIES do
		if try > MAX_TRIES // 2 then
			-- a long trouble: give the cluster time to settle (a failover, a reshard)
			skynet.sleep(10)
		end
		local conn, ok, result
		if target then
			local node, ask = target, asking
			target, asking = nil, false
			local reached
			reached, conn = pcall(self.get_connection, self, node)
			if not reached then
				ok, result, conn, unreachable = false, conn, nil, node.name
			elseif ask then
				-- ASKING holds for the next command of the connection only: both are sent
				-- at once, so no other coroutine's request comes between them
				ok, result = pcall(conn.pipeline, conn, { { "asking" }, argv })
				if ok and BOOLEAN[cmd] then
					result = result ~= 0
				end
			end
		else
			local lost
			conn, lost = slot_connection(self, slot)
			unreachable = lost or unreachable
		end
		if ok == nil then
			local f = conn[cmd]
			if f then
				ok, result = pcall(f, conn, tunpack(argv, 2, argv.n))
			else
				-- (disconnected by another coroutine while this one waited for it)
				ok, result = false, socketchannel.error
			end
		end
		if ok then
			return result
		end
		err = result
		local kind, moved, host, port = redirection(result)
		if kind then
			if host == "" then
				host = conn and host_of(self, conn) or "127.0.0.1"
			end
			local node = { host = host, port = port, name = nodename(host, port) }
			target = node
			if kind == "ASK" then
				asking = true
			else
				self.refresh_table_asap = true
				local old = self.slots[moved]
				node.slaves = old and old.slaves
				self.slots[moved] = node
			end
		elseif connection_lost(result) then
			if conn then
				forget(self, conn)
			end
		else
			error(result, 0)
		end
	end
	error(string.format("rediscluster: %s: too many Cluster redirections or lost connections " ..
		"(%d tries; last error: %s%s)", name, MAX_TRIES, tostring(err),
		unreachable and ("; " .. unreachable .. " cannot be reached") or ""), 2)
end

---------------------------------------------------------------------------------------------
-- subscriptions

-- Hands what a watch connection receives to onmessage until the client stops watching
-- with it (close). A lost connection is opened again, and subscribed again, by message().
local function deliver(self, name, w)
	local onmessage = rawget(self, "__onmessage")
	local message = w.message
	while self.__watching[name] == w do
		local ok, data, channel, pattern = pcall(message, w)
		if self.__watching[name] ~= w then
			break
		end
		if ok then
			if onmessage then
				local done, err = pcall(onmessage, data, channel, pattern)
				if not done then
					skynet.error("rediscluster: onmessage: " .. tostring(err))
				end
			end
		else
			-- (message() waits for a reconnect itself: this only keeps a failure that
			-- repeats at once from spinning)
			skynet.sleep(10)
		end
	end
end

-- The subscriber connection to `node`, opened (and its messages handed to onmessage) if
-- there is none.
function client:get_watch_connection(node)
	self:set_node_name(node)
	local name = node.name
	local w = self.__watching[name]
	if w then
		return w
	end
	return once(self, "watch " .. name, function()
		local watching = self.__watching
		local c = watching[name]
		if not c then
			c = redis.watch(link_conf(self, node))
			watching[name] = c
			skynet.fork(deliver, self, name, c)
		end
		return c
	end)
end

function client:get_watch_connection_by_slot(slot)
	local node = self.slots[slot]
	if not node then
		self:initialize_slots_cache()
		node = self.slots[slot]
	end
	if not node then
		error("rediscluster: no node known for slot " .. slot .. " (CLUSTER SLOTS could not be read)", 2)
	end
	return self:get_watch_connection(node)
end

-- any other method is the Redis command of that name
setmetatable(client, {
	__index = function(t, name)
		if type(name) ~= "string" then
			return nil
		end
		local f = function(self, ...)
			return self:call(name, ...)
		end
		t[name] = f
		return f
	end,
})

return rediscluster
