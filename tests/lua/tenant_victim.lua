-- Tenant test: a well-behaved service of tenant `calm`, bound to the exported `.good`, or
-- with the argument "private" to `.good_private`, which is not exported (so only tenant
-- `calm` sees the name). PING answers "pong"; NOTE counts one-way messages; COUNT answers
-- the count; PRIVATE answers the address of `.good_private`.
local skynet = require "skynet"
require "skynet.manager"

local notes = 0
local name = ... == "private" and ".good_private" or ".good"

skynet.start(function()
	skynet.register(name)
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "NOTE" then
			notes = notes + 1
		elseif cmd == "COUNT" then
			skynet.retpack(notes)
		elseif cmd == "PRIVATE" then
			skynet.retpack(skynet.localname(".good_private"))
		else
			skynet.retpack("pong")
		end
	end)
end)
