-- The service side of skynet.sharedata (sharedatad), skynet.datasheet (datasheetd) and
-- skynet.sharetable (sharetabled, which adds its loaders).
-- Each name's current table is a version held once by the host (skynet.core.share);
-- readers get copies of it, and a reader's `monitor` call is answered with the next
-- version when `update` makes one (or with nothing when the name is deleted), as skynet's.
local skynet = require "skynet"
local core = require "skynet.core"

local current = {}	-- name -> version id
local watchers = {}	-- name -> { response functions waiting for a newer version }
local command = {}
local NORET = {}
local server = {
	-- command name -> function(...): its result is the answer (NORET: none yet)
	command = command,
	NORET = NORET,
}

-- A table already packed by the caller (skynet.datasheet.builder's), under `name`,
-- created or updated.
function command.publish(name, packed)
	local id = core.share("create", packed)
	if current[name] == nil then
		current[name] = id
		watchers[name] = {}
	else
		current[name], id = id, current[name]
		local waiting = watchers[name]
		watchers[name] = {}
		for _, respond in ipairs(waiting) do
			core.share("copy", current[name])
			respond(true, current[name])
		end
		core.share("release", id)
	end
end


-- A table from what `new` and `update` take: a table, Lua source ("@file" for a data
-- file under lua_data_path) run with the arguments — its return value if a table, else
-- the globals it set — or nil for an empty table.
local function evaluate(name, v, ...)
	local kind = type(v)
	if kind == "table" then
		return v
	elseif kind == "nil" then
		return {}
	elseif kind ~= "string" then
		error("Unknown data type " .. kind)
	end
	local env = setmetatable({}, { __index = _ENV })
	local chunk
	if v:sub(1, 1) == "@" then
		chunk = assert(loadfile(v:sub(2), "bt", env))
	else
		chunk = assert(load(v, "=" .. name, "bt", env))
	end
	local result = chunk(...)
	setmetatable(env, nil)
	if type(result) == "table" then
		return result
	end
	return env
end

function command.new(name, v, ...)
	assert(current[name] == nil, "sharedata: " .. tostring(name) .. " exists")
	command.publish(name, skynet.packstring(evaluate(name, v, ...)))
end

function command.update(name, v, ...)
	command.publish(name, skynet.packstring(evaluate(name, v, ...)))
end

function command.delete(name)
	local id = assert(current[name], name)
	current[name] = nil
	for _, respond in ipairs(watchers[name]) do
		respond(true)
	end
	watchers[name] = nil
	core.share("release", id)
end

function command.query(name)
	assert(current[name], name)
	return server.copy_of(name)
end

-- Answers at once with the current version when the reader's is older, else when the
-- next one comes.
function command.monitor(name, id)
	local now = current[name]
	if now == nil then
		return nil
	end
	if now ~= id then
		core.share("copy", now)
		return now
	end
	local list = watchers[name]
	list[#list + 1] = skynet.response()
	return NORET
end

-- The current version of `name` (nil: none), with a copy for the reader it goes to.
function server.copy_of(name)
	local id = current[name]
	if id then
		core.share("copy", id)
	end
	return id
end

-- name -> current version id (to read, not to change).
function server.current()
	return current
end

-- Serves the commands on the "lua" protocol (call it in skynet.start).
function server.serve(service_name)
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = command[cmd]
		if not f then
			error(service_name .. ": unknown command " .. tostring(cmd))
		end
		local result = f(...)
		if result ~= NORET then
			skynet.ret(skynet.pack(result))
		end
	end)
end

return server
