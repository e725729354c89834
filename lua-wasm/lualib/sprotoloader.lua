-- sprotoloader: schemas shared by slot number between the services of a node. skynet keeps
-- them in C globals of its process; a skywasm service is its own sandbox, so a slot holds
-- the schema bundle in the node's DATACENTER service, and `load` (a call, so from a
-- coroutine such as skynet.start's) makes the service's own copy of the slot's current one.
local datacenter = require "skynet.datacenter"
local parser = require "sprotoparser"
local core = require "sproto.core"
local sproto = require "sproto"

local loader = {}
local KEY = "sprotoloader"

local function check_index(index)
	index = index or 0
	if math.type(index) ~= "integer" or index < 0 or index >= 16 then
		error("Invalid global slot index " .. tostring(index), 3)
	end
	return index
end

-- Saves the bundle `bin` into slot `index` (0..15) for every service of the node.
function loader.save(bin, index)
	index = check_index(index)
	assert(core.newproto(bin), "invalid sproto bundle")
	datacenter.set(KEY, index, bin)
end

-- Parses the schema file `filename` (a data file under lua_data_path) into slot `index`.
function loader.register(filename, index)
	local f = assert(io.open(filename), "Can't open sproto file")
	local data = f:read "a"
	f:close()
	loader.save(parser.parse(data), index)
end

-- The sproto object of slot `index`.
function loader.load(index)
	index = check_index(index)
	local bin = datacenter.get(KEY, index)
	if not bin then
		error("nil sproto at index " .. index, 2)
	end
	return sproto.sharenew(assert(core.newproto(bin)))
end

return loader
