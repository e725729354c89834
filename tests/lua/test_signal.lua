-- SIGNAL 0 to a Lua service stuck in a loop raises "signal 0" in that loop (skynet's
-- snlua): the caller gets an error, pcall catches it, and the service lives on.
local skynet = require "skynet"
local c = require "skynet.core"
local check = require "check"

local function signal0(address)
	c.command("SIGNAL", skynet.address(address) .. " 0")
end

skynet.start(function()
	local looper = skynet.newservice("looper")
	local result
	skynet.fork(function()
		result = table.pack(pcall(skynet.call, looper, "lua", "LOOP"))
	end)
	skynet.sleep(20) -- the looper spins on the other worker now
	signal0(looper)
	skynet.sleep(20)
	check.ok("SIGNAL 0 breaks the loop and the caller gets an error",
		result ~= nil and result[1] == false, result and tostring(result[2]))
	check.eq("the service lives on", skynet.call(looper, "lua", "PING"), "alive")

	local caught
	skynet.fork(function()
		caught = skynet.call(looper, "lua", "LOOP_PCALL")
	end)
	skynet.sleep(20)
	signal0(looper)
	skynet.sleep(20)
	check.ok("pcall catches signal 0", caught ~= nil and caught:find("signal 0", 1, true) ~= nil,
		tostring(caught))
	check.eq("and the service still answers", skynet.call(looper, "lua", "PING"), "alive")
	check.done()
end)
