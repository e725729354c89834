-- Spends about 10 ms of CPU on each message.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function()
		local start = skynet.hpc()
		while skynet.hpc() - start < 10000000 do
		end
	end)
end)
