-- A publisher for the multicast tests: NEW makes a channel (its id), USE id takes an
-- existing one, PUB n publishes ("msg", n, {nested = n}), DEL deletes it.
local skynet = require "skynet"

local channel

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, arg)
		-- required here, so that the service answers as soon as it is launched (the
		-- library's init calls multicastd; a request meanwhile would find no dispatch)
		local mc = require "skynet.multicast"
		if cmd == "NEW" then
			channel = mc.new()
			skynet.ret(skynet.pack(channel.channel))
		elseif cmd == "USE" then
			channel = mc.new { channel = arg }
			skynet.ret(skynet.pack(true))
		elseif cmd == "PUB" then
			channel:publish("msg", arg, { nested = arg })
			skynet.ret(skynet.pack(true))
		elseif cmd == "DEL" then
			channel:delete()
			skynet.ret(skynet.pack(true))
		end
	end)
end)
