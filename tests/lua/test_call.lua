-- send, call, ret, response, errors through calls, timeouts and sleep, fork and wakeup,
-- between Lua services in wasm.
local skynet = require "skynet"
local check = require "check"

skynet.start(function()
	local pong = skynet.newservice("pong")
	check.ok("newservice returns an address", type(pong) == "number" and pong > 0)

	local r = table.pack(skynet.call(pong, "lua", "PING", 1, nil, 2.5, nil))
	check.values("call returns every value, nil holes and number types kept", r,
		table.pack("PONG", 1, 1, nil, 2.5, nil))
	check.values("an empty answer has no values", table.pack(skynet.call(pong, "lua", "ECHO")), table.pack())
	check.eq("integers stay integers", skynet.call(pong, "lua", "ECHO", 3), 3)
	check.eq("floats stay floats", skynet.call(pong, "lua", "ECHO", 3.0), 3.0)
	local t = skynet.call(pong, "lua", "ECHO", { 1, 2, x = { y = "z" }, [10] = false })
	check.ok("tables round-trip", t[1] == 1 and t[2] == 2 and t.x.y == "z" and t[10] == false)
	local big = string.rep("0123456789abcdef", 65536)
	check.ok("a 1 MiB string arrives intact", skynet.call(pong, "lua", "ECHO", big) == big)

	check.raises("an error in the callee fails the call", "call failed",
		skynet.call, pong, "lua", "FAIL", "deliberate")
	check.eq("the callee lives on after an error", skynet.call(pong, "lua", "ECHO", "alive"), "alive")
	check.eq("a deferred response answers", skynet.call(pong, "lua", "LATER", "late"), "late")
	check.raises("response(false) raises in the caller", "call failed", skynet.call, pong, "lua", "REFUSE")

	for i = 1, 1000 do
		skynet.send(pong, "lua", "NOTE", i)
	end
	check.eq("1000 sends arrive before a later call", skynet.call(pong, "lua", "COUNT"), 1 + 1000)

	-- 1000 concurrent calls from forks
	local answered, waiter = 0, nil
	for i = 1, 1000 do
		skynet.fork(function()
			local echo = skynet.call(pong, "lua", "ECHO", i)
			if echo == i then
				answered = answered + 1
			end
			if answered == 1000 and waiter then
				skynet.wakeup(waiter)
			end
		end)
	end
	waiter = coroutine.running()
	skynet.wait(waiter)
	check.eq("1000 concurrent calls from forks all answered", answered, 1000)

	-- sleep and wakeup
	local before = skynet.now()
	skynet.sleep(5)
	check.ok("sleep waits", skynet.now() - before >= 5)
	local sleeper_result
	local sleeper = skynet.fork(function()
		sleeper_result = skynet.sleep(1000)
	end)
	skynet.yield()
	check.eq("wakeup happens after the current coroutine yields", sleeper_result, nil)
	skynet.wakeup(sleeper)
	skynet.yield()
	check.eq("a sleep cut short returns BREAK", sleeper_result, "BREAK")

	local fired = false
	skynet.timeout(2, function() fired = true end)
	check.eq("a timeout has not fired at once", fired, false)
	skynet.sleep(10)
	check.eq("a timeout fires", fired, true)

	local order = {}
	skynet.fork(function() order[#order + 1] = "fork" end)
	order[#order + 1] = "caller"
	skynet.yield()
	check.eq("fork runs after the current coroutine yields", table.concat(order, ","), "caller,fork")

	check.ok("send to a dead address is silent", pcall(skynet.send, 0x00ffffff, "lua", "x"))
	check.raises("call to a dead address raises", "call to invalid address",
		skynet.call, 0x00ffffff, "lua", "x")

	-- a service that exits fails its pending callers
	local doomed = skynet.newservice("pong")
	local pending_failed = false
	skynet.fork(function()
		pending_failed = not pcall(skynet.call, doomed, "lua", "SLEEP", 1000)
	end)
	skynet.yield()
	skynet.send(doomed, "lua", "EXIT")
	skynet.sleep(20)
	check.ok("pending callers get errors when a service exits", pending_failed)

	check.done()
end)
