-- skynet.sharemap: a table one service writes and others read, as skynet's: the writer's
-- table is sproto-encoded into a skynet.stm object at each commit, and readers decode the
-- newest version when they update. The types come from a schema file registered in
-- sprotoloader's slot 0.
--
--   sharemap.register(file)                 -- once, before writers and readers
--   local w = sharemap.writer(typename, t)  -- w.x = 1; w:commit(); w:copy() for a reader
--   local r = sharemap.reader(typename, copy) -- r.x; r:update() to see the last commit
local stm = require "skynet.stm"
local sprotoloader = require "sprotoloader"

local setmetatable = setmetatable
local pairs = pairs

local sharemap = {}

-- the schema of slot 0, loaded on first use
local sp

local function schema()
	if sp == nil then
		sp = sprotoloader.load(0)
	end
	return sp
end

-- Parses the schema file (a data file under lua_data_path) into slot 0.
function sharemap.register(protofile)
	sprotoloader.register(protofile, 0)
end

-- Publishes the writer's table as the newest version.
function sharemap:commit()
	self.__obj(sp:encode(self.__typename, self.__data))
end

-- A reference to the writer's object, for sharemap.reader in another service.
function sharemap:copy()
	return stm.copy(self.__obj)
end

function sharemap.writer(typename, data)
	local s = schema()
	data = data or {}
	local w = {
		__typename = typename,
		__obj = stm.new(s:encode(typename, data)),
		__data = data,
		commit = sharemap.commit,
		copy = sharemap.copy,
	}
	return setmetatable(w, { __index = data, __newindex = data })
end

-- stm reader callback: the new version decoded into the reader's table, in place
local function refill(msg, sz, self)
	local data = self.__data
	for k in pairs(data) do
		data[k] = nil
	end
	return sp:decode(self.__typename, msg, sz, data)
end

-- Takes the newest committed version, if there is one since the last update.
function sharemap:update()
	return self.__obj(refill, self)
end

function sharemap.reader(typename, copy)
	local s = schema()
	local obj = stm.newcopy(copy)
	local _, data = obj(function(msg, sz)
		return s:decode(typename, msg, sz)
	end)
	local r = {
		__typename = typename,
		__obj = obj,
		__data = data,
		update = sharemap.update,
	}
	return setmetatable(r, { __index = data, __newindex = error })
end

return sharemap
