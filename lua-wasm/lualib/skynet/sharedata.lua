-- skynet.sharedata: named tables every service reads, kept current, as skynet's.
-- `new(name, v, ...)` (a table, Lua source, "@file", or nil), `update(name, v, ...)`,
-- `delete(name)`, `query(name)` (an object that follows updates: what a reader holds of
-- it — the object and any sub-table — shows the new version once it comes),
-- `deepcopy(name, ...)` (a plain copy of the table or of what the keys lead to), `flush()`.
--
-- skywasm: the table is held once by the host and an object is a proxy that fetches what
-- it touches (skywasm.shareproxy); a monitor coroutine per name re-points the proxies when
-- sharedatad answers with a newer version.
local skynet = require "skynet"
local proxy = require "skywasm.shareproxy"

local sharedata = {}

local service
skynet.init(function()
	service = skynet.uniqueservice "sharedatad"
end)

local objects = {}	-- name -> the object this service follows

function sharedata.query(name)
	return proxy.followed(service, name, objects)
end

function sharedata.new(name, v, ...)
	skynet.call(service, "lua", "new", name, v, ...)
end

function sharedata.update(name, v, ...)
	skynet.call(service, "lua", "update", name, v, ...)
end

function sharedata.delete(name)
	skynet.call(service, "lua", "delete", name)
end

-- skynet drops versions no object shows any more; here that happens at each update.
function sharedata.flush()
	collectgarbage()
end

function sharedata.deepcopy(name, ...)
	return proxy.deepcopy(sharedata.query(name), ...)
end

return sharedata
