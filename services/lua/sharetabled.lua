-- sharetabled: the unique service behind skynet.sharetable. It turns a file, a chunk of
-- source or a table into a version held once by the host (skynet.core.share), keeps the
-- current version of each name, and hands readers copies of it. A version stays while any
-- reader holds it; a newer one replaces the name's current one.
local skynet = require "skynet"
local core = require "skynet.core"

local current = {}	-- name -> version id
local command = {}

local function publish(name, t)
	assert(type(t) == "table", "sharetable: the data is not a table")
	local id = core.share("create", skynet.packstring(t))
	local old = current[name]
	current[name] = id
	if old then
		core.share("release", old)
	end
end

-- a data file (read through lua_data_path), run with the arguments
function command.loadfile(name, ...)
	local chunk = assert(loadfile(name, "t", setmetatable({}, { __index = _G })))
	publish(name, chunk(...))
	skynet.ret()
end

function command.loadstring(name, source, ...)
	local chunk = assert(load(source, "=" .. name, "t", setmetatable({}, { __index = _G })))
	publish(name, chunk(...))
	skynet.ret()
end

-- a table, as skynet.packstring made it
function command.loadtable(name, packed)
	local id = core.share("create", packed)
	local old = current[name]
	current[name] = id
	if old then
		core.share("release", old)
	end
	skynet.ret()
end

local function copy_of(name)
	local id = current[name]
	if id then
		core.share("copy", id)
	end
	return id
end

function command.query(name)
	skynet.ret(skynet.pack(copy_of(name)))
end

function command.queryall(names)
	local ids = {}
	if names then
		for _, name in ipairs(names) do
			ids[name] = copy_of(name)
		end
	else
		for name in pairs(current) do
			ids[name] = copy_of(name)
		end
	end
	skynet.ret(skynet.pack(ids))
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = command[cmd]
		if not f then
			error("sharetabled: unknown command " .. tostring(cmd))
		end
		f(...)
	end)
	skynet.info_func(function()
		local info = {}
		for name, id in pairs(current) do
			info[name] = { current = id }
		end
		return info
	end)
end)
