-- sharetabled: the unique service behind skynet.sharetable, on the server of sharedatad
-- (lualib skywasm/shareserver.lua) with skynet.sharetable's loaders: a data file, a chunk
-- of source or a packed table becomes the current version of a name, held once by the
-- host; readers get copies of it (`query` answers nil for a name never loaded).
local skynet = require "skynet"
local server = require "skywasm.shareserver"

local command = server.command

local function publish_table(name, t)
	assert(type(t) == "table", "sharetable: the data is not a table")
	command.publish(name, skynet.packstring(t))
end

local function sandbox()
	return setmetatable({}, { __index = _G })
end

-- a data file (read through lua_data_path), run with the arguments
function command.loadfile(name, ...)
	publish_table(name, assert(loadfile(name, "t", sandbox()))(...))
end

function command.loadstring(name, source, ...)
	publish_table(name, assert(load(source, "=" .. name, "t", sandbox()))(...))
end

-- a table, as skynet.packstring made it
command.loadtable = command.publish

command.query = server.copy_of

function command.queryall(names)
	local ids = {}
	if names then
		for _, name in ipairs(names) do
			ids[name] = server.copy_of(name)
		end
	else
		for name in pairs(server.current()) do
			ids[name] = server.copy_of(name)
		end
	end
	return ids
end

skynet.start(function()
	server.serve("sharetabled")
	skynet.info_func(function()
		local info = {}
		for name, id in pairs(server.current()) do
			info[name] = { current = id }
		end
		return info
	end)
end)
