-- skynet.datasheet.builder: makes and updates the tables skynet.datasheet reads, as
-- skynet's. `new(name, v)` (once per name from this service), `update(name, v)`;
-- `compile(v)` gives what `new` and `update` also take instead of a table (here the table
-- packed, which the host turns into the shared copy).
local skynet = require "skynet"

local builder = {}

local service
skynet.init(function()
	service = skynet.uniqueservice "datasheetd"
end)

local built = {}

local function compiled(v)
	if type(v) == "string" then
		return v
	end
	assert(type(v) == "table", "datasheet: a table or a compiled one")
	return skynet.packstring(v)
end

function builder.compile(v)
	return compiled(v)
end

function builder.new(name, v)
	assert(not built[name], "datasheet: " .. tostring(name) .. " exists")
	built[name] = true
	skynet.call(service, "lua", "publish", name, compiled(v))
end

function builder.update(name, v)
	assert(built[name], "datasheet: " .. tostring(name) .. " was not made by this service")
	skynet.call(service, "lua", "publish", name, compiled(v))
end

return builder
