-- Loads a Lua service, as skynet's lualib/loader.lua does: finds the script along
-- `luaservice`, sets SERVICE_NAME, SERVICE_PATH and package.path, runs `preload`, then runs
-- the script with the service's arguments. The host reads the files (`host.load_source`):
-- a service never opens host files itself.
local host, argline = ...

local args = {}
for word in string.gmatch(argline, "%S+") do
	args[#args + 1] = word
end
SERVICE_NAME = args[1]
if not SERVICE_NAME then
	error("snlua: no service script named (LAUNCH snlua <script> [args])")
end

local LUA_SERVICE = host.getenv("luaservice") or "./service/?.lua"
package.path = host.getenv("lua_path") or "./lualib/?.lua;./lualib/?/init.lua"
package.cpath = host.getenv("lua_cpath") or "./luaclib/?.so"

local LUA_PATH = package.path

-- A module along the patterns a service put on package.path itself (skynet's services do
-- `package.path = "./x/?.lua;" .. package.path`): read as files, which only a service that
-- may read host files can do. The node's own lua_path is searched by the host first.
local function own_path_search(name)
	if package.path == LUA_PATH then
		return
	end
	local configured = {}
	for pat in string.gmatch(LUA_PATH, "[^;]+") do
		configured[pat] = true
	end
	local fname = string.gsub(name, "%.", "/")
	for pat in string.gmatch(package.path, "[^;]+") do
		if not configured[pat] then
			local ok, pattern, path, source = pcall(host.load_source, "file", (string.gsub(pat, "%?", fname)))
			if ok and pattern then
				return pattern, path, source
			end
		end
	end
end

-- `require` finds snlua's built-in library first (a searcher snlua installed), then modules
-- through the host.
local function host_searcher(name)
	local pattern, path, source = host.load_source("module", name)
	if not pattern then
		pattern, path, source = own_path_search(name)
	end
	if not pattern then
		return "\n\tno module '" .. name .. "' in lua_path (" .. package.path .. ")"
	end
	local chunk, err = load(source, "@" .. path)
	if not chunk then
		error(string.format("error loading module '%s' from file '%s':\n\t%s", name, path, err))
	end
	return chunk, path
end
package.searchers = { package.searchers[1], package.searchers[2], host_searcher }
-- skynet's require, which may yield in a coroutine (skynet.init's second step)
_G.require = (require "skynet.require").require

-- A pre-initialized state was copied from one image: give each service its own sequence.
do
	local c = require "skynet.core"
	math.randomseed(c.hpc(), c.self())
end

local pattern, filename, source
source = host.builtin("service", SERVICE_NAME)
if source then
	pattern, filename = "?", SERVICE_NAME .. ".lua"
else
	pattern, filename, source = host.load_source("service", SERVICE_NAME)
end
if not pattern then
	local tried = {}
	for pat in string.gmatch(LUA_SERVICE, "([^;]+);*") do
		tried[#tried + 1] = "cannot open " .. string.gsub(pat, "?", SERVICE_NAME)
	end
	error(table.concat(tried, "\n"))
end
local main, err = load(source, "@" .. filename)
if not main then
	error(err)
end

-- skynet's loader matches "(.*/)[^/?]+$", then "(.*/).+$": a directory service (a last
-- component without "?", like "?/init.lua") adds its directory to package.path. The same,
-- with one scan for the last "/" (those patterns backtrack over the whole template, a cost
-- every launch paid).
local last_slash = string.find(pattern, "/[^/]*$")
local last = last_slash and string.sub(pattern, last_slash + 1)
if last and last ~= "" and not string.find(last, "?", 1, true) then
	local service_path = string.gsub(string.sub(pattern, 1, last_slash), "?", SERVICE_NAME)
	package.path = service_path .. "?.lua;" .. package.path
	SERVICE_PATH = service_path
elseif last ~= "" then
	SERVICE_PATH = last_slash and string.sub(pattern, 1, last_slash)
else
	SERVICE_PATH = string.match(pattern, "(.*/).+$")
end

local preload = host.getenv("preload")
if preload then
	local _, pre_path, pre_source = host.load_source("preload", "")
	if not pre_path then
		error("cannot open preload " .. preload)
	end
	local f = assert(load(pre_source, "@" .. pre_path))
	f(table.unpack(args))
end

main(select(2, table.unpack(args)))
