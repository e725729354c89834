-- .cslave on a single node (harbor = 0), as skynet's cdummy: REGISTER and QUERYNAME for
-- global names (bound in this node), LINK waits forever (there is no other harbor to lose),
-- CONNECT reports that there is nothing to connect to.
local skynet = require "skynet"
require "skynet.manager"

local harbor = {}

function harbor.REGISTER(name, handle)
	skynet.name(name, handle)
end

function harbor.QUERYNAME(name)
	skynet.ret(skynet.pack(skynet.localname(name)))
end

function harbor.LINK()
	skynet.response() -- never answered while this node lives
end

function harbor.LINKMASTER()
	skynet.response()
end

function harbor.CONNECT(id)
	skynet.error("Can't connect to other harbor in single node mode: " .. tostring(id))
	skynet.ret(skynet.pack(nil))
end

skynet.start(function()
	skynet.dispatch("lua", function(session, _, command, ...)
		local f = assert(harbor[command], command)
		f(...)
	end)
end)
