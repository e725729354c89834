-- One agent of the ring: every 100 ms it calls its peer a few times (more, the lower its
-- number: some agents are busier than others).
local skynet = require "skynet"

local number = tonumber(...) or 1

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, peer)
		if cmd == "PEER" then
			skynet.fork(function()
				while true do
					for _ = 1, 400 // number do
						skynet.call(peer, "lua", "HELLO")
					end
					skynet.sleep(10)
				end
			end)
		else
			skynet.retpack(true)
		end
	end)
end)
