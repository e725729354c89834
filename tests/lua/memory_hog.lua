-- Test service: GROW n tries to hold n MiB of strings. Started with "own", it sets a 2 MiB
-- skynet.memlimit; otherwise the config's lua_memlimit applies.
local skynet = require "skynet"
if ... == "own" then
	skynet.memlimit(2 * 1024 * 1024)
end

local kept = {}

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, n)
		if cmd == "GROW" then
			local ok, err = pcall(function()
				local block = {}
				for i = 1, n * 16 do
					block[i] = string.rep(string.char(65 + i % 26), 65536)
				end
				kept[#kept + 1] = block
			end)
			kept = {}
			collectgarbage()
			skynet.retpack(ok, err)
		else
			skynet.retpack("alive")
		end
	end)
end)
