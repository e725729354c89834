-- Benchmark (host/benches/node.rs, "harbor"), run unchanged by skywasm and by real skynet:
-- the service the other harbor node calls, registered as the global name HECHO. ECHO
-- answers its argument; NOTE counts a one-way note; NOTES answers how many arrived.
local skynet = require "skynet"
require "skynet.manager"

local notes = 0

skynet.start(function()
	skynet.dispatch("lua", function(_, _, command, value)
		if command == "ECHO" then
			skynet.ret(skynet.pack(value))
		elseif command == "NOTE" then
			notes = notes + 1
		elseif command == "NOTES" then
			skynet.ret(skynet.pack(notes))
		end
	end)
	skynet.register("HECHO")
	skynet.error("HARBOR ECHO READY")
end)
