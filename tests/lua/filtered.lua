-- A service started with skynet.filter: the filter sees every message before dispatch (it
-- counts them) and may rewrite it (a "text" message becomes a "lua" NOTE).
local skynet = require "skynet"
require "skynet.manager"

local seen, notes = 0, 0

skynet.filter(function(prototype, msg, sz, session, source)
	seen = seen + 1
	if prototype == skynet.PTYPE_TEXT then
		return skynet.PTYPE_LUA, skynet.packstring("NOTE"), nil, session, source
	end
	return prototype, msg, sz, session, source
end, function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "NOTE" then
			notes = notes + 1
		else
			skynet.retpack(seen, notes)
		end
	end)
end)
