-- skynet.memory (wasm memory figures read by the host) and skynet.codecache / skynet.cache.
local skynet = require "skynet"
local memory = require "skynet.memory"
local check = require "check"

skynet.start(function()
	local other = skynet.newservice("pong")
	local info = memory.info()
	local mine = info[skynet.self()]
	check.ok("info has this service's memory", math.type(mine) == "integer" and mine > 0, mine)
	check.ok("info has another service's memory", (info[other] or 0) > 0, info[other])
	check.ok("info has the node's own services", (info[skynet.localname(".launcher")] or 0) > 0)
	local total, blocks = memory.total(), memory.block()
	local sum, n = 0, 0
	for _, bytes in pairs(info) do
		sum, n = sum + bytes, n + 1
	end
	check.ok("total is at least this and that service", total >= mine + info[other], total)
	check.eq("block counts the memories", blocks, n)
	local current = memory.current()
	check.ok("current is this instance's linear memory, in 64 KiB pages",
		current > 0 and current % 65536 == 0, current)
	-- the memory grows with what the service keeps
	local keep = {}
	for i = 1, 20000 do
		keep[i] = string.rep("x", 100) .. i
	end
	check.ok("current grows with what Lua holds", memory.current() > current, memory.current())
	local stats = memory.jestat()
	check.eq("jestat answers the wasm total as allocated", math.type(stats["stats.allocated"]), "integer")
	check.eq("mallctl of a known name", math.type(memory.mallctl("stats.active")), "integer")
	check.raises("mallctl of another name says there is no jemalloc", "no jemalloc", memory.mallctl, "arenas.narenas")
	check.eq("heap profiling is never active", memory.profactive(), false)
	check.raises("and cannot be turned on", "does not exist", memory.profactive, true)
	memory.dumpinfo()

	check.eq("skynet.cache is skynet.codecache", skynet.cache, require "skynet.codecache")
	skynet.cache.clear()
	check.eq("mode returns the previous mode", skynet.cache.mode("OFF"), "ON")
	check.eq("and keeps the new one", skynet.cache.mode(), "OFF")
	check.raises("an unknown mode raises", "Invalid mode", skynet.cache.mode, "SOMETIMES")
	check.ok("keep the table alive", #keep == 20000)
	check.done()
end)
