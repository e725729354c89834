-- Bounds test: CALL calls a holder and answers what it answered; each SLOW message takes
-- 100 ms, so a burst of them keeps the mailbox full for a while.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, holder)
		if cmd == "CALL" then
			skynet.ret(skynet.pack(skynet.call(holder, "lua", "HOLD")))
		elseif cmd == "SLOW" then
			local start = skynet.now()
			while skynet.now() - start < 10 do
			end
		end
	end)
end)
