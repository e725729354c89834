-- Memory limits: `lua_memlimit` from the config (the test config sets 8M), then a tighter
-- skynet.memlimit in a service: allocations past the limit raise a catchable
-- "not enough memory" and the service goes on.
local skynet = require "skynet"
local check = require "check"

skynet.start(function()
	for _, mode in ipairs { "own", "config" } do
		local hog = skynet.newservice("memory_hog", mode)
		local ok, err = skynet.call(hog, "lua", "GROW", 64)
		check.ok(mode .. " limit: growing past it raises not enough memory", ok == false
			and tostring(err):find("not enough memory", 1, true) ~= nil, tostring(err))
		check.eq(mode .. " limit: the service lives on and answers", skynet.call(hog, "lua", "PING"), "alive")
		local ok2 = skynet.call(hog, "lua", "GROW", 1)
		check.eq(mode .. " limit: small allocations still work", ok2, true)
	end
	check.done()
end)
