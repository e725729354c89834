-- .launcher in Lua (skynet's service/launcher.lua): LAUNCH / LOGLAUNCH start a service and
-- answer with its address once it has started (a Lua service confirms with LAUNCHOK or
-- ERROR; a wasm module has started when LAUNCH returns), REMOVE forgets an ended service,
-- LIST / STAT / MEM / GC / KILL / QUERY inspect and manage the services it launched.
local skynet = require "skynet"
local core = require "skynet.core"
require "skynet.manager"

local services = {} -- address -> "module args"
local command = {}
local instance = {} -- address -> deferred response of the LAUNCH waiting for it
local launch_session = {} -- address -> session of that LAUNCH request (for QUERY)

local NORET = {}

function command.LIST()
	local list = {}
	for address, name in pairs(services) do
		list[skynet.address(address)] = name
	end
	return list
end

-- Asks every launched service a debug command in parallel, for at most `ti` centiseconds.
local function ask_all(ti, format, ...)
	local list = {}
	local unanswered = {}
	local req = skynet.request()
	for address in pairs(services) do
		local r = { address, "debug", ... }
		req:add(r)
		unanswered[r] = address
	end
	for r, resp in req:select(ti) do
		local address = r[1]
		if resp then
			list[skynet.address(address)] = format(resp[1], address)
		else
			list[skynet.address(address)] = format("ERROR", address)
		end
		unanswered[r] = nil
	end
	for _, address in pairs(unanswered) do
		list[skynet.address(address)] = format("TIMEOUT", address)
	end
	return list
end

function command.STAT(_, ti)
	return ask_all(ti, function(v) return v end, "STAT")
end

function command.MEM(_, ti)
	return ask_all(ti, function(kb, address)
		local name = services[address]
		if type(kb) == "string" then
			return string.format("%s (%s)", kb, name)
		else
			return string.format("%.2f Kb (%s)", kb, name)
		end
	end, "MEM")
end

function command.GC(address, ti)
	for service in pairs(services) do
		skynet.send(service, "debug", "GC")
	end
	return command.MEM(address, ti)
end

function command.KILL(_, handle)
	skynet.kill(handle)
	local ret = { [skynet.address(handle)] = tostring(services[handle]) }
	services[handle] = nil
	return ret
end

function command.REMOVE(_, handle, kill)
	services[handle] = nil
	local response = instance[handle]
	if response then
		-- it ended before confirming: newservice returns nil (or fails, when killed)
		response(not kill)
		instance[handle] = nil
		launch_session[handle] = nil
	end
	return NORET
end

local function launch_service(module, ...)
	local param = table.concat({ ... }, " ")
	-- on behalf of the requester: the service joins the requester's tenant
	local requester = select(2, skynet.context())
	local answer = core.command("LAUNCHAS", skynet.address(requester) .. " " .. module .. " " .. param)
	local inst = answer and tonumber(answer:sub(2), 16)
	local session = skynet.context()
	local response = skynet.response()
	if not inst then
		response(false)
		return
	end
	services[inst] = module .. " " .. param
	if module == "snlua" then
		instance[inst] = response
		launch_session[inst] = session
	else
		-- a wasm module's init is its start: it is running now
		response(true, inst)
	end
	return inst
end

function command.LAUNCH(_, module, ...)
	launch_service(module, ...)
	return NORET
end

function command.LOGLAUNCH(_, module, ...)
	local inst = launch_service(module, ...)
	if inst then
		core.command("LOGON", skynet.address(inst))
	end
	return NORET
end

function command.ERROR(address)
	local response = instance[address]
	if response then
		response(false)
		launch_session[address] = nil
		instance[address] = nil
	end
	services[address] = nil
	return NORET
end

function command.LAUNCHOK(address)
	local response = instance[address]
	if response then
		response(true, address)
		instance[address] = nil
		launch_session[address] = nil
	end
	return NORET
end

function command.QUERY(_, request_session)
	for address, session in pairs(launch_session) do
		if session == request_session then
			return address
		end
	end
end

-- The historical text protocol of C services: "" confirms, "ERROR" fails.
skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	unpack = skynet.tostring,
	dispatch = function(_, address, cmd)
		if cmd == "" then
			command.LAUNCHOK(address)
		elseif cmd == "ERROR" then
			command.ERROR(address)
		else
			error("Invalid text command " .. cmd)
		end
	end,
}

-- managing other services is for the node's own tenant; untrusted requesters may launch
-- (into their own tenant) and confirm their own start
local open_to_all = { LAUNCH = true, LAUNCHOK = true, ERROR = true, REMOVE = true }

local function trusted(address)
	local tenant = core.command("TENANT", skynet.address(address))
	return tenant ~= nil and tenant:sub(-8) == " trusted"
end

skynet.dispatch("lua", function(_, address, cmd, ...)
	cmd = string.upper(cmd)
	if not open_to_all[cmd] and not trusted(address) then
		skynet.error(string.format("%s from %s refused: its tenant is untrusted", cmd, skynet.address(address)))
		error("launcher: " .. cmd .. " is not allowed for an untrusted tenant")
	end
	if cmd == "REMOVE" and (...) ~= address and not trusted(address) then
		return
	end
	local f = command[cmd]
	if f then
		local ret = f(address, ...)
		if ret ~= NORET then
			skynet.ret(skynet.pack(ret))
		end
	else
		skynet.ret(skynet.pack { "Unknown command" })
	end
end)

skynet.start(function() end)
