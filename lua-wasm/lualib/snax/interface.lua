-- snax.interface(name, G [, loader]): runs the snax file `name` in the environment G and
-- collects what it defines, as skynet's: functions assigned into `accept.*` and
-- `response.*`, and the system functions `init`, `exit`, `hotfix`, `profile`. Returns the
-- method list — { id, group, name, f } with ids 1..4 for the system functions, in that
-- order, then the others in definition order — and the search pattern that found the file.
--
-- skywasm: the default loader asks the host for the file along the config's `snax` path
-- (a service names the file, never a host path).
local skynet = require "skynet"
local core = require "skynet.core"

local SYSTEM = { "init", "exit", "hotfix", "profile" }

local function host_loader(path, name, G)
	local pattern, filename, source = core.load_source("snax", name)
	if not pattern then
		local tried = {}
		for pat in string.gmatch(path, "[^;]+") do
			tried[#tried + 1] = "cannot open " .. string.gsub(pat, "?", name)
		end
		error(table.concat(tried, "\n"))
	end
	local f, err = load(source, "@" .. filename, "bt", G)
	if not f then
		error(err)
	end
	return f, pattern
end

return function(name, G, loader)
	loader = loader or host_loader
	assert(getmetatable(G) == nil)
	for _, reserved in ipairs { "init", "exit", "accept", "response" } do
		assert(G[reserved] == nil)
	end

	local methods = {}
	local system_index = {}
	for i, s in ipairs(SYSTEM) do
		system_index[s] = i
		methods[i] = { i, "system", s }
	end

	-- accept.* and response.*: each assignment defines one method of that group
	local function group(groupname)
		local defined = {}
		return setmetatable({}, {
			__newindex = function(_, key, f)
				if type(key) ~= "string" then
					error(string.format("%s method only support string", groupname))
				end
				if type(f) ~= "function" then
					error(string.format("%s.%s must be function", groupname, key))
				end
				if defined[key] then
					error(string.format("%s.%s duplicate definition", groupname, key))
				end
				defined[key] = true
				methods[#methods + 1] = { #methods + 1, groupname, key, f }
			end,
		})
	end

	-- Globals the file defines go here while it runs, then into G.
	local defined_globals = {}
	local env = setmetatable({
		accept = group "accept",
		response = group "response",
	}, { __index = defined_globals })

	local path = assert(skynet.getenv "snax", "please set snax in config file")
	local main, pattern = loader(path, name, G)

	setmetatable(G, {
		__index = env,
		__newindex = function(_, key, value)
			local index = system_index[key]
			if not index then
				defined_globals[key] = value
				return
			end
			if type(value) ~= "function" then
				error(string.format("%s must be a function", key))
			end
			methods[index][4] = value
		end,
	})
	local ok, err = xpcall(main, debug.traceback)
	setmetatable(G, nil)
	assert(ok, err)
	for key, value in pairs(defined_globals) do
		G[key] = value
	end
	return methods, pattern
end
