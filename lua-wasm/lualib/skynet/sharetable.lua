-- skynet.sharetable: read-only tables many services read without a copy each, as skynet's.
-- `loadfile(name, ...)`, `loadstring(name, source, ...)` and `loadtable(name, t)` make a
-- table the current version of `name`; `query(name)` and `queryall([names])` give it to a
-- reader; `update(...)` makes a reader's tables of those names (and every sub-table it
-- reached) show their current versions.
--
-- skywasm: services share no memory, so the table is held once by the host and a reader
-- gets a proxy that fetches what it touches (skywasm.shareproxy): a reader's memory grows
-- with what it reads, not with the table.
local skynet = require "skynet"

local proxy = require "skywasm.shareproxy"

local sharetable = {}

local names = {}	-- version id -> the name it was queried by

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
	names[id] = name
	return proxy.adopt_root(id)
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
				proxy.repoint(old, new)
				names[old] = nil
			end
		end
	end
end

return sharetable
