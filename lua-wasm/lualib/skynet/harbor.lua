-- skynet.harbor: global names and the links between harbor nodes, through `.cslave` as in
-- skynet (the native cslave in a harbor network, cdummy on a single node). A global name is
-- bound with the NAME command, which in a harbor network also registers it with the master
-- (skynet sends REGISTER to .cslave; the effect is the same, and the name is bound before
-- this returns).
local skynet = require "skynet"
local c = require "skynet.core"

local harbor = {}

function harbor.globalname(name, handle)
	handle = handle or skynet.self()
	c.command("NAME", name .. " " .. skynet.address(handle))
end

-- The address of a global name: waits until some node has registered it.
function harbor.queryname(name)
	return skynet.call(".cslave", "lua", "QUERYNAME", name)
end

-- Returns when the link to harbor `id` breaks (at once when there is none).
function harbor.link(id)
	skynet.call(".cslave", "lua", "LINK", id)
end

-- Returns once harbor `id` is linked to this node.
function harbor.connect(id)
	skynet.call(".cslave", "lua", "CONNECT", id)
end

-- Returns when the connection to the master breaks.
function harbor.linkmaster()
	skynet.call(".cslave", "lua", "LINKMASTER")
end

return harbor
