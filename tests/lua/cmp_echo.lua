-- Run unchanged by skywasm and by real skynet in the benchmarks that compare them
-- (host/benches/node.rs, "vs-skynet" and "harbor"): ECHO answers its argument, NOTE counts
-- a one-way note, NOTES answers how many arrived. With the config key `cmp_echo_name` it
-- registers that name (a global name across a harbor network) and logs `CMP ECHO READY`.
local skynet = require "skynet"
require "skynet.manager"

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
	local name = skynet.getenv "cmp_echo_name"
	if name then
		skynet.register(name)
		skynet.error("CMP ECHO READY")
	end
end)
