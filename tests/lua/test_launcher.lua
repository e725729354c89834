-- The .launcher service's "lua" commands as skynet's debug_console uses them: LIST, STAT,
-- MEM, GC, KILL (run under the Lua launcher and under the Rust one).
local skynet = require "skynet"
require "skynet.manager"
local check = require "check"

local function count(t)
	local n = 0
	for _ in pairs(t) do n = n + 1 end
	return n
end

skynet.start(function()
	local a = skynet.newservice("pong")
	local b = skynet.newservice("pong")
	local name_a = skynet.address(a)

	local list = skynet.call(".launcher", "lua", "LIST")
	check.ok("LIST names a launched service by its address", list[name_a] ~= nil, tostring(list[name_a]))
	check.ok("LIST gives module and arguments", tostring(list[name_a]):find("pong", 1, true) ~= nil,
		tostring(list[name_a]))

	local stat = skynet.call(".launcher", "lua", "STAT")
	check.ok("STAT answers for each launched service", type(stat[name_a]) == "table"
		and type(stat[name_a].mqlen) == "number", tostring(stat[name_a]))

	local mem = skynet.call(".launcher", "lua", "MEM")
	check.ok("MEM gives kilobytes and the service", tostring(mem[name_a]):find("Kb (", 1, true) ~= nil
		and tostring(mem[name_a]):find("pong", 1, true) ~= nil, tostring(mem[name_a]))

	local gc = skynet.call(".launcher", "lua", "GC")
	check.ok("GC answers as MEM", tostring(gc[name_a]):find("Kb", 1, true) ~= nil, tostring(gc[name_a]))

	local before = count(skynet.call(".launcher", "lua", "LIST"))
	local killed = skynet.call(".launcher", "lua", "KILL", b)
	check.ok("KILL answers with the killed service", killed[skynet.address(b)] ~= nil)
	skynet.sleep(1)
	check.raises("a killed service no longer answers", "call to invalid address", skynet.call, b, "lua", "PING")
	check.eq("KILL removes it from LIST", count(skynet.call(".launcher", "lua", "LIST")), before - 1)

	-- a service that exits by itself leaves the list too
	skynet.send(a, "lua", "EXIT")
	skynet.sleep(2)
	check.eq("an exited service leaves LIST", skynet.call(".launcher", "lua", "LIST")[name_a], nil)

	check.done()
end)
