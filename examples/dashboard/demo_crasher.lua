-- SPIN loops forever, also through pcall's catchable CPU error: its tenant's hard limit
-- ends it.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function()
		while true do
			pcall(function()
				while true do
				end
			end)
		end
	end)
end)
