-- An exit monitor (skynet.monitor): the node tells it of every service that ends, as a
-- "client" message from the ended service's address.
local skynet = require "skynet"

local ended = {}

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	unpack = function() end,
}

skynet.start(function()
	skynet.dispatch("client", function(_, source)
		ended[source] = true
	end)
	skynet.dispatch("lua", function(_, _, cmd, addr)
		assert(cmd == "ENDED", cmd)
		skynet.retpack(ended[addr] == true)
	end)
end)
