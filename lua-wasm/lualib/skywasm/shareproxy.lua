-- Proxies of tables held once by the host (the `share` import, host/src/share.rs), the
-- reader's side of skynet.sharetable, skynet.sharedata and skynet.datasheet. A proxy
-- fetches a key the first time it is read and keeps it (then it is a plain table read); a
-- sub-table is a proxy too, kept as its parent's field, so a reader holds what it read and
-- no more. Indexing, `pairs`, `ipairs` and `#` work through metamethods; assigning a key
-- not read yet raises (one already read changes this reader's view only: skynet does not
-- check writes to shared tables either).
--
-- A version is a host table id. This service's roots of each version are kept here; when
-- a newer version comes, `repoint` turns every proxy reached from them to the same place
-- in the new one, so code holding a table or a sub-table sees the new data.
local core = require "skynet.core"

local M = {}

-- proxy -> { id, node, parent, key, len }. Not weak: a proxy lives as long as its parent
-- (which keeps it as a field) and the roots are kept below, so nothing here could be
-- collected, and weak tables would cost the collector every cycle.
local backing = {}
local roots = {}	-- version id -> { root proxies }

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

proxy_meta.__newindex = function(_, k)
	error(string.format("a shared table is read-only (the key [%s])", tostring(k)), 2)
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

-- True for a proxy.
function M.is_proxy(t)
	return backing[t] ~= nil
end

-- This service's root of version `id`, taking the copy its service made for this reader
-- (a second copy of a version already held is given back).
function M.adopt_root(id)
	core.share("adopt", id)
	local list = roots[id]
	if list then
		core.share("release", id)
		return list[1]
	end
	local root = new_proxy(id, 0)
	roots[id] = { root }
	return root
end

-- The proxies of version `id` this service holds: its roots and every sub-table proxy
-- reached from them (each is a field of its parent).
local function proxies_of(id)
	local found = {}
	local function walk(proxy)
		found[#found + 1] = proxy
		for _, v in next, proxy do
			local b = backing[v]
			if b and b.id == id then
				walk(v)
			end
		end
	end
	for _, root in ipairs(roots[id] or {}) do
		walk(root)
	end
	return found
end

-- Points every proxy of version `old` at the same place in version `new` (which this
-- service adopted), dropping what it read; a proxy whose place is gone in `new` keeps
-- showing `old`. Gives `old` back when nothing shows it any more.
function M.repoint(old, new)
	local moved = {}
	local remaining = false
	for _, proxy in ipairs(proxies_of(old)) do
		local b = backing[proxy]
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
	local old_roots = roots[old] or {}
	local new_roots = roots[new]
	if not new_roots then
		new_roots = {}
		roots[new] = new_roots
	end
	local kept = {}
	for _, root in ipairs(old_roots) do
		if moved[root] then
			new_roots[#new_roots + 1] = root
		else
			kept[#kept + 1] = root
		end
	end
	if remaining then
		roots[old] = kept
	else
		roots[old] = nil
		core.share("release", old)
	end
end

-- A version this service received a copy of but does not need (it holds it already).
local function discard(id)
	core.share("adopt", id)
	core.share("release", id)
end

-- The object `service` (sharedatad or datasheetd) gives for `name`, kept current: a
-- coroutine asks the service for each newer version and re-points what this service
-- holds to it. `objects` (name -> object) keeps one per name for this service.
function M.followed(service, name, objects)
	local skynet = require "skynet"
	local object = objects[name]
	if object then
		return object
	end
	local id = skynet.call(service, "lua", "query", name)
	object = objects[name]
	if object then
		-- another coroutine of this service queried it meanwhile
		discard(id)
		return object
	end
	object = M.adopt_root(id)
	objects[name] = object
	skynet.fork(function()
		while true do
			local newer = skynet.call(service, "lua", "monitor", name, id)
			if newer == nil then
				-- deleted: what this service holds keeps showing the last version
				objects[name] = nil
				return
			end
			core.share("adopt", newer)
			M.repoint(id, newer)
			id = newer
		end
	end)
	return object
end

-- A plain Lua copy of a proxy (or of the value under the keys `...` in it).
function M.deepcopy(proxy, ...)
	for i = 1, select("#", ...) do
		proxy = proxy[select(i, ...)]
		if type(proxy) ~= "table" then
			return proxy
		end
	end
	local function copy(t)
		local result = {}
		for k, v in pairs(t) do
			if type(v) == "table" then
				v = copy(v)
			end
			result[k] = v
		end
		return result
	end
	return copy(proxy)
end

return M
