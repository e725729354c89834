-- clusterproxy (skynet's service/clusterproxy.lua): a local stand-in for a service of
-- another node. Every "lua" message it gets is sent on to `address` of `node`; a request's
-- reply (or its failure) comes back to the requester. Started by cluster.proxy.
local skynet = require "skynet"
local cluster = require "skynet.cluster"
require "skynet.manager"

local node, address = ...
address = math.tointeger(tonumber(address)) or address

skynet.register_protocol {
	name = "system",
	id = skynet.PTYPE_SYSTEM,
	unpack = function(...) return ... end,
}

local forward_map = {
	[skynet.PTYPE_SNAX] = skynet.PTYPE_SYSTEM,
	[skynet.PTYPE_LUA] = skynet.PTYPE_SYSTEM,
	[skynet.PTYPE_RESPONSE] = skynet.PTYPE_RESPONSE,
}

skynet.forward_type(forward_map, function()
	skynet.dispatch("system", function(session, _, msg, sz)
		local body = skynet.tostring(msg, sz)
		skynet.trash(msg, sz) -- forwarded types keep their buffers: this one is done
		if session == 0 then
			cluster.rawsend(node, address, body)
		else
			skynet.ret(cluster.rawcall(node, address, body))
		end
	end)
end)
