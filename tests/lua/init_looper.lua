-- Test service: with the argument "spawn" it asks `.launcher` for an `init_looper` and logs
-- `INIT LOOPER ok detail` when that ends; without, it loops in its main chunk (its init),
-- before skynet.start.
local skynet = require "skynet"

if ... == "spawn" then
	skynet.start(function()
		local ok, err = pcall(skynet.newservice, "init_looper")
		skynet.error("INIT LOOPER", ok, tostring(err))
	end)
else
	skynet.error("looping in init")
	while true do end
end
