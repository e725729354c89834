-- Benchmark peer: answers PING with its argument, counts NOTE.
local skynet = require "skynet"

local notes = 0

skynet.start(function()
	skynet.dispatch("lua", function(session, _, cmd, n)
		if cmd == "PING" then
			skynet.retpack(n)
		else
			notes = notes + 1
		end
	end)
end)
