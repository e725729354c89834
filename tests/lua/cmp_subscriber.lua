-- A subscriber for cmp_bench.lua's multicast mode: SUB channel n subscribes and expects n
-- publishes; WAIT answers (with the count) once all have arrived.
local skynet = require "skynet"
local mc = require "skynet.multicast"

local received, expected, waiting = 0, nil, nil

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, channel, n)
		if cmd == "SUB" then
			expected = n
			local c = mc.new {
				channel = channel,
				dispatch = function()
					received = received + 1
					if received == expected and waiting then
						waiting(true, received)
						waiting = nil
					end
				end,
			}
			c:subscribe()
			skynet.ret(skynet.pack(true))
		elseif received == expected then
			skynet.ret(skynet.pack(received))
		else
			waiting = skynet.response()
		end
	end)
end)
