-- DATACENTER: a tree of values for the whole node (skynet.datacenter). QUERY k1 k2 ...,
-- UPDATE k1 k2 ... value (returns the old value), WAIT k1 k2 ... (answers once the path
-- holds a value; a waiter on a path that becomes a branch gets an error).
local skynet = require "skynet"

local database = {}
-- waiters: nested tables of paths; a leaf is a list of deferred responses
local waiting = {}
local LEAF = {}

local function lookup(node, key, ...)
	if node == nil or key == nil then
		return node
	end
	return lookup(node[key], ...)
end

local function query(key, ...)
	local node = database[key]
	if node ~= nil then
		return lookup(node, ...)
	end
end

local function update(node, key, value, ...)
	if select("#", ...) == 0 then
		local old = node[key]
		node[key] = value
		return old, value
	end
	if node[key] == nil then
		node[key] = {}
	end
	return update(node[key], value, ...)
end

-- The waiters for a path, removed from the tree; waiters below a path that just got a
-- value (so it is no longer a branch) fail.
local function take_waiters(node, key, ...)
	if key == nil then
		return
	end
	local entry = node[key]
	if entry == nil then
		return
	end
	if entry[LEAF] then
		node[key] = nil
		if select("#", ...) ~= 1 then
			for _, respond in ipairs(entry) do
				respond(false)
			end
			return
		end
		return entry
	end
	return take_waiters(entry, ...)
end

local function wait_for(node, key, next_key, ...)
	if next_key == nil then
		local entry = node[key]
		if entry == nil then
			entry = { [LEAF] = true }
			node[key] = entry
		end
		assert(entry[LEAF], "datacenter: waiting on a branch")
		entry[#entry + 1] = skynet.response()
		return
	end
	local entry = node[key]
	if entry == nil then
		entry = {}
		node[key] = entry
	end
	assert(not entry[LEAF], "datacenter: waiting below a leaf")
	return wait_for(entry, next_key, ...)
end

local command = {}

function command.QUERY(...)
	return query(...)
end

function command.UPDATE(...)
	local old, value = update(database, ...)
	if old ~= nil or value == nil then
		return old
	end
	local waiters = take_waiters(waiting, ...)
	if waiters then
		for _, respond in ipairs(waiters) do
			respond(true, value)
		end
	end
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd == "WAIT" then
			local value = query(...)
			if value ~= nil then
				skynet.ret(skynet.pack(value))
			else
				wait_for(waiting, ...)
			end
		else
			local f = assert(command[cmd], cmd)
			skynet.ret(skynet.pack(f(...)))
		end
	end)
end)
