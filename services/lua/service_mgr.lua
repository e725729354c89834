-- .service: node-unique services (skynet.uniqueservice / queryservice). LAUNCH name ...
-- starts `name` once, however many ask at the same time; QUERY name waits until it exists;
-- GLAUNCH / GQUERY do the same for global ("@name") services; LIST shows them all. As in
-- skynet, the service_mgr of the standalone node (a single node is one) is also the global
-- `SERVICE` and keeps the global services; on the other nodes of a harbor network GLAUNCH
-- and GQUERY ask it (once per name) and LIST adds what every node's reports.
local skynet = require "skynet"
require "skynet.manager"

local services = {} -- name -> handle, error text, or a table of waiters while launching
local cmd = {}

local function launched(name, ok, result)
	local waiters = services[name]
	services[name] = ok and result or tostring(result)
	for _, waiter in ipairs(waiters) do
		skynet.wakeup(waiter.co)
	end
	if not ok then
		error(tostring(result))
	end
	return result
end

local function wait_for(name, launch, ...)
	local entry = services[name]
	if type(entry) == "number" then
		return entry
	elseif type(entry) == "string" then
		error(entry)
	end
	local co = coroutine.running()
	local session, source = skynet.context()
	if entry == nil then
		entry = {}
		services[name] = entry
	end
	if entry.launch == nil and launch then
		entry.launch = { co = co, session = session, source = source }
		return launched(name, pcall(launch, ...))
	end
	entry[#entry + 1] = { co = co, session = session, source = source }
	skynet.wait(co)
	entry = services[name]
	if type(entry) == "string" then
		error(entry)
	end
	return entry
end

local function real_name(name)
	if string.byte(name) == 64 then -- "@"
		return string.sub(name, 2)
	end
	return name
end

-- A snax service is known by "snaxd.<its name>" ("@snaxd.<name>" when global), and started
-- by skynet.snax (which also calls its init), as in skynet.
local function snax_new(...)
	return require("skynet.snax").rawnewservice(...)
end

function cmd.LAUNCH(name, subname, ...)
	if real_name(name) == "snaxd" then
		return wait_for(name .. "." .. subname, snax_new, subname, ...)
	end
	return wait_for(name, skynet.newservice, real_name(name), subname, ...)
end

function cmd.QUERY(name, subname)
	if real_name(name) == "snaxd" then
		return wait_for(name .. "." .. subname)
	end
	return wait_for(name)
end

local function list_service()
	local list = {}
	for name, entry in pairs(services) do
		if type(entry) == "number" then
			list[name] = skynet.address(entry)
		elseif type(entry) == "string" then
			list[name] = "Error: " .. entry
		else
			local lines = {}
			if entry.launch then
				lines[#lines + 1] = "Launching from " .. skynet.address(entry.launch.source)
			end
			if #entry > 0 then
				lines[#lines + 1] = "Querying:"
				for _, waiter in ipairs(entry) do
					lines[#lines + 1] = skynet.address(waiter.source)
				end
			end
			list[name] = table.concat(lines, "\n")
		end
	end
	return list
end

-- The standalone node: global services live here; other nodes report their managers.
local function register_global()
	function cmd.GLAUNCH(name, ...)
		return cmd.LAUNCH("@" .. name, ...)
	end

	function cmd.GQUERY(name, ...)
		return cmd.QUERY("@" .. name, ...)
	end

	local managers = {}

	function cmd.REPORT(manager)
		managers[manager] = true
	end

	function cmd.LIST()
		local result = {}
		for manager in pairs(managers) do
			local suffix = "@" .. skynet.harbor(manager)
			local ok, list = pcall(skynet.call, manager, "lua", "LIST")
			if ok then
				for k, v in pairs(list) do
					result[k .. suffix] = v
				end
			end
		end
		for k, v in pairs(list_service()) do
			result[k] = v
		end
		return result
	end
end

-- Another node of a harbor network: global services are the standalone node's.
local function register_local()
	local function remote(command, name, ...)
		local global_name = "@" .. name
		local local_name = global_name
		if name == "snaxd" then
			local_name = global_name .. "." .. (...)
		end
		return wait_for(local_name, skynet.call, "SERVICE", "lua", command, global_name, ...)
	end

	function cmd.GLAUNCH(...)
		return remote("LAUNCH", ...)
	end

	function cmd.GQUERY(...)
		return remote("QUERY", ...)
	end

	cmd.LIST = list_service
	skynet.call("SERVICE", "lua", "REPORT", skynet.self())
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, command, ...)
		local f = cmd[command]
		if f == nil then
			skynet.ret(skynet.pack(nil, "Invalid command " .. tostring(command)))
			return
		end
		local ok, result = pcall(f, ...)
		if ok then
			skynet.ret(skynet.pack(result))
		else
			skynet.ret(skynet.pack(nil, result))
		end
	end)
	local existing = skynet.localname ".service"
	if existing then
		skynet.error(".service is already registered by ", skynet.address(existing))
		skynet.exit()
	else
		skynet.register(".service")
		if skynet.getenv "standalone" then
			skynet.register("SERVICE")
			register_global()
		else
			register_local()
		end
	end
end)
