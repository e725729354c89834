-- skynet.datasheet: `query(name)` gives the table a builder made (skynet.datasheet.builder)
-- as an object that follows its updates: what a reader holds of it — the object and any
-- sub-table — shows the new version once it comes, as skynet's.
--
-- skywasm: the table is held once by the host and the object is a proxy that fetches
-- what it touches (skywasm.shareproxy).
local skynet = require "skynet"
local proxy = require "skywasm.shareproxy"

local datasheet = {}

local service
skynet.init(function()
	service = skynet.uniqueservice "datasheetd"
end)

local objects = {}	-- name -> the object this service follows

function datasheet.query(name)
	return proxy.followed(service, name, objects)
end

return datasheet
