-- Same-run comparison with skynet (host/benches/node.rs, "vs-skynet"), run unchanged by
-- skywasm and by real skynet: ECHO answers its argument, NOTE counts a one-way note, NOTES
-- answers how many arrived.
local skynet = require "skynet"

local notes = 0

skynet.start(function()
	skynet.dispatch("lua", function(_, _, command, value)
		if command == "ECHO" then
			skynet.ret(skynet.pack(value))
		elseif command == "NOTE" then
			notes = notes + 1
		else
			skynet.ret(skynet.pack(notes))
		end
	end)
end)
