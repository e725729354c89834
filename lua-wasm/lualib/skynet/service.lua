-- skynet.service: named services whose code is a Lua function, started once per node by
-- `service_provider` (a unique service) in a `service_cell`, as skynet's. `new` ships the
-- function as a dumped chunk, so it may use no upvalue but _ENV.
local skynet = require "skynet"

local service = {}

local known = {}	-- name -> address, as this service last learned it
local provider_address

local function provider()
	if not provider_address then
		provider_address = skynet.uniqueservice "service_provider"
	end
	return provider_address
end

-- A function that can travel as a dumped chunk: its only upvalue is _ENV.
local function assert_portable(f)
	local ups = debug.getinfo(f, "u").nups
	assert(ups == 1, "service.new: the main function may use no upvalue but _ENV")
	assert(debug.getupvalue(f, 1) == "_ENV", "service.new: the main function's upvalue is not _ENV")
end

-- Starts the service `name` running `mainfunc(...)` unless it runs already (or is being
-- started: then waits for it); returns its address.
function service.new(name, mainfunc, ...)
	local p = provider()
	local address, booting = skynet.call(p, "lua", "test", name)
	if not address then
		if booting then
			address = skynet.call(p, "lua", "query", name)
		else
			assert_portable(mainfunc)
			address = skynet.call(p, "lua", "launch", name, string.dump(mainfunc), ...)
		end
	end
	known[name] = address
	return address
end

-- Forgets the service `name` and kills it; false when there is none (or it is starting).
function service.close(name)
	local address = skynet.call(provider(), "lua", "close", name)
	if not address then
		return false
	end
	known[name] = nil
	skynet.kill(address)
	return true
end

-- The address of the service `name`, waiting until someone starts it.
function service.query(name)
	local address = known[name]
	if not address then
		address = skynet.call(provider(), "lua", "query", name)
		known[name] = address
	end
	return address
end

return service
