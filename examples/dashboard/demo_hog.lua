-- Grows its Lua heap by 4 MiB a second until its `memory` limit refuses it, lets it all
-- go, and starts again: a refusal every few seconds (linear memory never shrinks, so the
-- tenant's memory stays at the high-water mark).
local skynet = require "skynet"

skynet.start(function()
	skynet.fork(function()
		local kept = {}
		while true do
			local ok = pcall(function()
				local block = {}
				for i = 1, 64 do
					block[i] = string.rep(string.char(65 + i % 26), 65536)
				end
				kept[#kept + 1] = block
			end)
			if not ok then
				kept = {}
				collectgarbage()
			end
			skynet.sleep(100)
		end
	end)
end)
