-- A service that puts its own pattern in front of package.path (as skynet's examples do)
-- finds modules there; the node's lua_path still comes first for what it has.
local skynet = require "skynet"
local check = require "check"

package.path = skynet.getenv("own_module_path") .. ";" .. package.path

skynet.start(function()
	local m = require "own_path_module"
	check.eq("a module along the service's own pattern", m.where, "own")
	check.eq("lua_path still serves its modules", (require "check"), check)
	check.raises("a module on no path", "no module 'nowhere_module'", require, "nowhere_module")
	check.done()
end)
