-- A producer sending a slow consumer more than it can take for 20 s out of every 40: its
-- mailbox grows, then drains.
local skynet = require "skynet"

skynet.start(function()
	-- Tenants' start services may run before the Lua bootstrap has named `.launcher`.
	while not skynet.localname(".launcher") do
		skynet.sleep(10)
	end
	local consumer = skynet.newservice("demo_consumer")
	skynet.fork(function()
		while true do
			for _ = 1, 200 do
				for _ = 1, 15 do
					pcall(skynet.send, consumer, "lua", "WORK", string.rep("x", 512))
				end
				skynet.sleep(10)
			end
			skynet.sleep(2000)
		end
	end)
end)
