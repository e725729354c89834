-- skynet.harbor with single-node semantics (skynet with harbor = 0): global names are bound
-- in this node; there are no other harbors to link or connect to.
local skynet = require "skynet"
local c = require "skynet.core"

local harbor = {}

function harbor.globalname(name, handle)
	handle = handle or skynet.self()
	c.command("NAME", name .. " " .. skynet.address(handle))
end

function harbor.queryname(name)
	return c.addresscommand("QUERY", name)
end

-- Waits until the link to harbor `id` breaks: in a single node it never does.
function harbor.link(id)
	skynet.wait(setmetatable({}, { __name = "harbor.link " .. tostring(id) }))
end

function harbor.connect(id)
	skynet.error("harbor.connect(" .. tostring(id) .. "): single node, nothing to connect")
end

function harbor.linkmaster()
	skynet.wait(setmetatable({}, { __name = "harbor.linkmaster" }))
end

function harbor.unlink(id)
end

return harbor
