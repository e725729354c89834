-- Bounds test: holds the requests it gets (HOLD) until RELEASE answers them all, and says
-- how many answers went out; HELD says how many it holds.
local skynet = require "skynet"

local held = {}

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "HOLD" then
			held[#held + 1] = skynet.response()
		elseif cmd == "HELD" then
			skynet.ret(skynet.pack(#held))
		elseif cmd == "RELEASE" then
			local sent = 0
			for _, answer in ipairs(held) do
				if answer(true, "answered") then
					sent = sent + 1
				end
			end
			held = {}
			skynet.ret(skynet.pack(sent))
		end
	end)
end)
