-- Bounds test: ARM n arms n timeouts of 1,000 s and answers how many its tenant allowed.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, n)
		if cmd == "ARM" then
			local armed = 0
			for _ = 1, n do
				if pcall(skynet.timeout, 100000, function() end) then
					armed = armed + 1
				end
			end
			skynet.ret(skynet.pack(armed))
		end
	end)
end)
