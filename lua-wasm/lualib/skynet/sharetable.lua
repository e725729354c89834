-- skynet.sharetable: read-only tables many services read without a copy each, as skynet's.
-- `loadfile(name, ...)`, `loadstring(name, source, ...)` and `loadtable(name, t)` make a
-- table the current version of `name`; `query(name)` and `queryall([names])` give it to a
-- reader; `update(...)` makes a reader's tables of those names (and every sub-table it
-- reached) show their current versions.
--
-- skywasm: services share no memory, so the table is held once by the host and a reader
-- gets a read-only proxy that fetches what it touches (then keeps it): a reader's memory
-- grows with what it reads, not with the table. Reads with the metamethods work —
-- indexing, `pairs`, `ipairs`, `#` — while `next` and `rawget` see only what was read.
-- A proxy keeps what it read in itself (a second read is a plain table read), so, as in
-- skynet where writing to a shared table is not checked, assigning a key already read
-- changes this reader's view only; assigning any other key raises.
local skynet = require "skynet"
local core = require "skynet.core"

local sharetable = {}

-- proxy -> { id, node, parent, key }. Not weak: a proxy lives as long as its parent (which
-- keeps it as a field) and the roots live in `roots`, so nothing here could be collected,
-- and weak tables would cost the collector on every cycle.
local backing = {}
local roots = {}	-- version id -> its root proxy
local names = {}	-- version id -> the name it was queried by

local proxy_meta = {}

local function new_proxy(id, node, parent, key)
	local proxy = setmetatable({}, proxy_meta)
	backing[proxy] = { id = id, node = node, parent = parent, key = key }
	return proxy
end

-- The proxy of the sub-table at `node` under key `k` of `parent`, made once, with the
-- scalar fields the host sent along (a small table's).
local function child(parent, b, k, node, ...)
	local existing = rawget(parent, k)
	if existing then
		return existing
	end
	local proxy = new_proxy(b.id, node, parent, k)
	for i = 1, select("#", ...), 2 do
		local field, value = select(i, ...)
		rawset(proxy, field, value)
	end
	rawset(parent, k, proxy)
	return proxy
end

-- What a "get" answered: a scalar (kept), or a table's node, true and its fields.
local function got(t, b, k, v, is_table, ...)
	if is_table then
		return child(t, b, k, v, ...)
	end
	if v ~= nil then
		rawset(t, k, v)
	end
	return v
end

proxy_meta.__index = function(t, k)
	local b = backing[t]
	return got(t, b, k, core.share("get", b.id, b.node, k))
end

proxy_meta.__newindex = function()
	error("sharetable: a shared table is read-only", 2)
end

proxy_meta.__len = function(t)
	local b = backing[t]
	local n = b.len
	if not n then
		n = core.share("len", b.id, b.node)
		b.len = n
	end
	return n
end

-- What a "next" answered: nothing at the end, or a key and its value (as `got`).
local function stepped(t, b, k, v, is_table, ...)
	if k == nil then
		return nil
	end
	if is_table then
		v = child(t, b, k, v, ...)
	end
	return k, v
end

proxy_meta.__pairs = function(t)
	local b = backing[t]
	return function(_, k)
		return stepped(t, b, core.share("next", b.id, b.node, k))
	end, t, nil
end

local address
local function service()
	if not address then
		address = skynet.uniqueservice "sharetabled"
		sharetable.address = address
	end
	return address
end

function sharetable.loadfile(filename, ...)
	skynet.call(service(), "lua", "loadfile", filename, ...)
end

function sharetable.loadstring(filename, source, ...)
	skynet.call(service(), "lua", "loadstring", filename, source, ...)
end

function sharetable.loadtable(filename, tbl)
	assert(type(tbl) == "table")
	skynet.call(service(), "lua", "loadtable", filename, skynet.packstring(tbl))
end

-- The root proxy of version `id` of `name`, taking the copy the service made for this
-- reader.
local function root_of(id, name)
	core.share("adopt", id)
	local root = roots[id]
	if root then
		core.share("release", id) -- this service holds it already
		return root
	end
	root = new_proxy(id, 0)
	roots[id] = root
	names[id] = name
	return root
end

function sharetable.query(filename)
	local id = skynet.call(service(), "lua", "query", filename)
	if id then
		return root_of(id, filename)
	end
end

function sharetable.queryall(filenamelist)
	local ids = skynet.call(service(), "lua", "queryall", filenamelist)
	local list = {}
	for name, id in pairs(ids) do
		list[name] = root_of(id, name)
	end
	return list
end

-- The proxies of version `old` this service holds: its root and every sub-table proxy
-- reached from it (each is a field of its parent).
local function proxies_of(old)
	local found = {}
	local function walk(proxy)
		found[#found + 1] = proxy
		for _, v in next, proxy do
			local b = backing[v]
			if b and b.id == old then
				walk(v)
			end
		end
	end
	if roots[old] then
		walk(roots[old])
	end
	return found
end

-- Points every proxy of version `old` at the same place in version `new`, dropping what
-- it read; a proxy whose place is gone in `new` keeps showing `old` (true then).
local function repoint(old, new)
	local moved = {}
	local remaining = false
	for _, proxy in ipairs(proxies_of(old)) do
		local b = backing[proxy]
		-- the keys from the root down to this proxy
		local path = {}
		local at = b
		while at.parent do
			table.insert(path, 1, at.key)
			at = backing[at.parent]
		end
		local node = 0
		for _, k in ipairs(path) do
			local v, is_table = core.share("get", new, node, k)
			if not is_table then
				node = nil
				break
			end
			node = v
		end
		if node then
			b.id, b.node, b.len = new, node, nil
			moved[proxy] = true
		else
			remaining = true
		end
	end
	-- what was read of the old version goes; re-pointed sub-tables stay in place
	for proxy in pairs(moved) do
		local stale = {}
		for k, v in next, proxy do
			if not moved[v] then
				stale[#stale + 1] = k
			end
		end
		for _, k in ipairs(stale) do
			rawset(proxy, k, nil)
		end
	end
	return remaining
end

function sharetable.update(...)
	for _, name in ipairs { ... } do
		local new = skynet.call(service(), "lua", "query", name)
		if new then
			root_of(new, name)
			local older = {}
			for id, named in pairs(names) do
				if named == name and id ~= new then
					older[#older + 1] = id
				end
			end
			for _, old in ipairs(older) do
				if not repoint(old, new) then
					roots[old], names[old] = nil, nil
					core.share("release", old)
				end
			end
		end
	end
end

return sharetable
