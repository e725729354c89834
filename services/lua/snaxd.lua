-- snaxd: runs one snax service (`snaxd <name>`), as skynet's. The snax file is found along
-- the config's `snax` path and runs in this service's globals; "snax" messages carry a
-- method id: the system methods init (first, once), exit, hotfix and profile, then the
-- file's accept.* (no answer) and response.* (answered) methods, each timed with
-- skynet.profile.
local skynet = require "skynet"
local core = require "skynet.core"
local snax_interface = require "snax.interface"
local profile = require "skynet.profile"
local snax = require "skynet.snax"

local snax_name = tostring(...)

-- `snax_loader` names a file returning a loader(path, name, G), as in skynet.
local loader
do
	local path = skynet.getenv "snax_loader"
	if path then
		local _, filename, source = core.load_source("file", path)
		loader = assert(load(source, "@" .. filename))()
	end
end

local methods, pattern = snax_interface(snax_name, _ENV, loader)
-- The service's own directory (`<snax pattern's directory>/<name>/`) comes before
-- lua_path; the host's module search derives the same from the pattern it matched.
local snax_path = pattern:sub(1, pattern:find("?", 1, true) - 1) .. snax_name .. "/"
package.path = snax_path .. "?.lua;" .. package.path
SERVICE_NAME = snax_name
SERVICE_PATH = snax_path

-- method name -> { count, time }
local profile_table = {}

local function record(name, seconds)
	local entry = profile_table[name]
	if not entry then
		entry = { count = 0, time = 0 }
		profile_table[name] = entry
	end
	entry.count = entry.count + 1
	entry.time = entry.time + seconds
end

local function answer(f, ...)
	return skynet.ret(skynet.pack(f(...)))
end

local function run_timed(method, ...)
	profile.start()
	local ok, err
	if method[2] == "accept" then
		ok, err = xpcall(method[4], debug.traceback, ...)
	else
		ok, err = xpcall(answer, debug.traceback, method[4], ...)
	end
	record(method[3], profile.stop())
	assert(ok, err)
end

skynet.start(function()
	local initialized = false
	local function dispatch(_, _, id, ...)
		local method = methods[id]
		if method[2] ~= "system" then
			assert(initialized, "Init first")
			return run_timed(method, ...)
		end
		local command = method[3]
		if command == "hotfix" then
			local hotfix = require "snax.hotfix"
			skynet.ret(skynet.pack(hotfix(methods, ...)))
		elseif command == "profile" then
			skynet.ret(skynet.pack(profile_table))
		elseif command == "init" then
			assert(not initialized, "Already init")
			if method[4] then
				method[4](...)
			end
			skynet.ret()
			skynet.info_func(function()
				return profile_table
			end)
			initialized = true
		else
			assert(initialized, "Never init")
			assert(command == "exit")
			if method[4] then
				method[4](...)
			end
			skynet.ret()
			initialized = false
			skynet.exit()
		end
	end
	skynet.dispatch("snax", dispatch)

	-- Serve the "lua" protocol too, for calls through the cluster.
	function snax.enablecluster()
		skynet.dispatch("lua", dispatch)
	end
end)
