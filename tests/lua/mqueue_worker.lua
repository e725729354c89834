-- A service for test_mqueue.lua, serving the "queue" protocol with skynet.mqueue.
local skynet = require "skynet"
local mqueue = require "skynet.mqueue"

local logged = {}

skynet.start(function()
	mqueue.register(function(cmd, a, b)
		if cmd == "add" then
			skynet.sleep(1) -- the next message waits for this one
			return a + b
		elseif cmd == "log" then
			logged[#logged + 1] = a
		elseif cmd == "logged" then
			return table.concat(logged, ",")
		elseif cmd == "fail" then
			error("worker refuses")
		end
	end)
end)
