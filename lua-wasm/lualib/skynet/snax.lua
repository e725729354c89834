-- skynet.snax: services defined by a snax file (accept.* methods are posted, response.*
-- methods are requested), started by `snaxd`, as skynet's. An object is
-- { post = ..., req = ..., type = name, handle = address }.
local skynet = require "skynet"
local snax_interface = require "snax.interface"

local snax = {}

-- snax name -> { name, accept = {method -> id}, response = {...}, system = {...} }
local interfaces = {}

-- The environment snax files run in when only their interface is wanted: `snax_interface_g`
-- names a module that gives one (skynet's), else `require` does nothing.
local interface_env
do
	local module = skynet.getenv "snax_interface_g"
	interface_env = module and require(module) or { require = function() end }
end

skynet.register_protocol {
	name = "snax",
	id = skynet.PTYPE_SNAX,
	pack = skynet.pack,
	unpack = skynet.unpack,
}

function snax.interface(name)
	local known = interfaces[name]
	if known then
		return known
	end
	local t = { name = name, accept = {}, response = {}, system = {} }
	for _, method in ipairs(snax_interface(name, interface_env)) do
		local id, group, method_name = method[1], method[2], method[3]
		t[group][method_name] = id
	end
	interfaces[name] = t
	return t
end

local object_meta = {
	__tostring = function(obj)
		return string.format("[%s:%x]", obj.type, obj.handle)
	end,
}

-- obj.post.<method>(...) sends (and returns nothing); obj.req.<method>(...) calls.
local function method_table(t, handle, group, what, make)
	return setmetatable({}, {
		__index = function(_, method)
			local id = t[group][method]
			if not id then
				error(string.format("%s %s:%s no exist", what, t.name, method))
			end
			return make(handle, id)
		end,
	})
end

local function poster(handle, id)
	return function(...)
		skynet.send(handle, "snax", id, ...)
	end
end

local function requester(handle, id)
	return function(...)
		return skynet.call(handle, "snax", id, ...)
	end
end

local bound = setmetatable({}, { __mode = "kv" })

function snax.bind(handle, name)
	local obj = bound[handle]
	if obj then
		assert(obj.type == name)
		return obj
	end
	local t = snax.interface(name)
	obj = setmetatable({
		post = method_table(t, handle, "accept", "post", poster),
		req = method_table(t, handle, "response", "request", requester),
		type = name,
		handle = handle,
	}, object_meta)
	bound[handle] = obj
	return obj
end

function snax.rawnewservice(name, ...)
	local t = snax.interface(name)
	local handle = skynet.newservice("snaxd", name)
	assert(bound[handle] == nil)
	if t.system.init then
		skynet.call(handle, "snax", t.system.init, ...)
	end
	return handle
end

function snax.newservice(name, ...)
	return snax.bind(snax.rawnewservice(name, ...), name)
end

local function service_mgr(command, name, ...)
	return assert(skynet.call(".service", "lua", command, "snaxd", name, ...))
end

function snax.uniqueservice(name, ...)
	return snax.bind(service_mgr("LAUNCH", name, ...), name)
end

function snax.globalservice(name, ...)
	return snax.bind(service_mgr("GLAUNCH", name, ...), name)
end

function snax.queryservice(name)
	return snax.bind(service_mgr("QUERY", name), name)
end

function snax.queryglobal(name)
	return snax.bind(service_mgr("GQUERY", name), name)
end

function snax.kill(obj, ...)
	local t = snax.interface(obj.type)
	skynet.call(obj.handle, "snax", t.system.exit, ...)
end

function snax.self()
	return snax.bind(skynet.self(), SERVICE_NAME)
end

function snax.exit(...)
	snax.kill(snax.self(), ...)
end

local function raise_unless(ok, ...)
	if not ok then
		error(...)
	end
	return ...
end

-- Patches the running snax service `obj` with the snax source `source` (see snax.hotfix);
-- returns what the patch's own `hotfix` function returned.
function snax.hotfix(obj, source, ...)
	local t = snax.interface(obj.type)
	return raise_unless(skynet.call(obj.handle, "snax", t.system.hotfix, source, ...))
end

function snax.printf(fmt, ...)
	skynet.error(string.format(fmt, ...))
end

-- method name -> { count, time } of the snax service `obj`.
function snax.profile_info(obj)
	local t = snax.interface(obj.type)
	return skynet.call(obj.handle, "snax", t.system.profile)
end

return snax
