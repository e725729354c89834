-- Test service: FLOOD n sends itself n one-way notes from one message (its mailbox cannot
-- drain meanwhile) and answers how many sends were taken; COUNT answers how many notes
-- arrived so far.
local skynet = require "skynet"

local notes = 0

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, n)
		if cmd == "FLOOD" then
			local me = skynet.self()
			for _ = 1, n do
				skynet.send(me, "lua", "NOTE")
			end
			skynet.retpack(n)
		elseif cmd == "NOTE" then
			notes = notes + 1
		else
			skynet.retpack(notes)
		end
	end)
end)
