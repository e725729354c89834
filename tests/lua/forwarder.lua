-- A proxy written with skynet.forward_type, as skynet's cluster proxies are: "lua" requests
-- arrive as "system" messages whose buffers are forwarded to the target without a copy.
local skynet = require "skynet"
require "skynet.manager"

local target = tonumber(...)

skynet.register_protocol {
	name = "system",
	id = skynet.PTYPE_SYSTEM,
	unpack = function(...) return ... end,
}

skynet.forward_type({ [skynet.PTYPE_LUA] = skynet.PTYPE_SYSTEM }, function()
	skynet.dispatch("system", function(_, _, msg, sz)
		skynet.ret(skynet.rawcall(target, "lua", msg, sz))
	end)
end)
