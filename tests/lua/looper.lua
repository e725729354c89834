-- Test service: LOOP spins forever; LOOP_PCALL spins inside pcall and answers the error
-- that stopped it; LOOP_STUBBORN logs "looping stubbornly", then catches every error and
-- spins on; PING answers "alive".
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "LOOP" then
			while true do end
		elseif cmd == "LOOP_STUBBORN" then
			skynet.error("looping stubbornly")
			while true do
				pcall(function() while true do end end)
			end
		elseif cmd == "LOOP_PCALL" then
			local _, err = pcall(function() while true do end end)
			skynet.retpack(tostring(err))
		else
			skynet.retpack("alive")
		end
	end)
end)
