-- Bounds test: REG name answers whether skynet.register bound the name to this service
-- (as in skynet, register itself says nothing).
local skynet = require "skynet"
require "skynet.manager"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, name)
		if cmd == "REG" then
			skynet.register(name)
			skynet.ret(skynet.pack(skynet.localname(name) == skynet.self()))
		end
	end)
end)
