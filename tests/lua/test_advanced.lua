-- The less common parts of skynet's Lua API: forward_type, filter, monitor, killthread,
-- request/select, trace, dispatch_unknown_request/response, and the debug protocol's
-- TASK/UNIQTASK/KILLTASK/LINK/TERM.
local skynet = require "skynet"
require "skynet.manager"
local check = require "check"

local unknown_requests, unknown_responses = {}, {}

skynet.start(function()
	local pong = skynet.newservice("pong")

	-- forward_type: a proxy whose "lua" requests are forwarded buffers
	local proxy = skynet.newservice("forwarder", pong)
	check.values("forward_type proxies a call",
		table.pack(skynet.call(proxy, "lua", "ECHO", 1, "two", 3.0)), table.pack(1, "two", 3.0))
	check.values("and another",
		table.pack(skynet.call(proxy, "lua", "PING")), table.pack("PONG", 1))

	-- filter: sees every message first (its own start timer too) and may rewrite it
	local filtered = skynet.newservice("filtered")
	skynet.send(filtered, "lua", "NOTE")
	require("skynet.core").send(filtered, skynet.PTYPE_TEXT, 0, "plain text")
	check.values("filter sees every message and rewrites text to lua",
		table.pack(skynet.call(filtered, "lua", "COUNT")), table.pack(4, 2))

	-- monitor: told of every service that ends
	local monitor = skynet.monitor("exit_monitor")
	local short = skynet.newservice("pong")
	skynet.send(short, "lua", "EXIT")
	skynet.sleep(5)
	check.eq("the exit monitor is told of an ended service", skynet.call(monitor, "lua", "ENDED", short), true)
	check.eq("and not of a live one", skynet.call(monitor, "lua", "ENDED", pong), false)
	check.eq("monitor with query finds the same service", skynet.monitor("exit_monitor", true), monitor)

	-- killthread: a forked coroutine not yet run, a sleeping one, one named by its text
	local ran = {}
	local queued = skynet.fork(function() ran.queued = true end)
	check.eq("killthread removes a fork not yet run", skynet.killthread(queued), queued)
	local sleeping = skynet.fork(function() skynet.sleep(5); ran.sleeping = true end)
	local named = skynet.fork(function() skynet.sleep(5); ran.named = true end)
	skynet.yield()
	check.eq("killthread stops a sleeping coroutine", skynet.killthread(sleeping), sleeping)
	check.eq("killthread finds a coroutine by name", skynet.killthread(tostring(named)), named)
	check.eq("killthread of an unknown thread is nil", skynet.killthread("thread: nowhere"), nil)
	skynet.sleep(10)
	check.ok("killed coroutines never run on", not ran.queued and not ran.sleeping and not ran.named,
		tostring(ran.queued) .. tostring(ran.sleeping) .. tostring(ran.named))

	-- request/select: parallel calls; failures for invalid addresses; a timeout
	local answers, failed = {}, 0
	local dead = skynet.newservice("pong")
	skynet.kill(dead)
	local reqs = skynet.request()
	reqs:add { pong, "lua", "ECHO", "a" }
	reqs:add { pong, "lua", "ECHO", "b" }
	reqs:add { dead, "lua", "ECHO", "c" }
	for req, resp in reqs:select() do
		if resp then
			answers[#answers + 1] = resp[1]
		else
			failed = failed + 1
			check.eq("a failed request is the one to the dead address", req[1], dead)
		end
	end
	table.sort(answers)
	check.eq("select returns every answer", table.concat(answers, " "), "a b")
	check.eq("select returns the failed request", failed, 1)
	local slow = skynet.request { pong, "lua", "SLEEP", 50 } { pong, "lua", "ECHO", "quick" }
	local got = {}
	for _, resp in slow:select(10) do
		got[#got + 1] = resp[1]
	end
	check.eq("select with a timeout returns what arrived in time", table.concat(got, " "), "quick")
	check.eq("and says it timed out", slow.timeout, true)

	-- trace: a tag for the running request
	check.eq("no trace tag by default", skynet.tracetag(), nil)
	skynet.trace("check")
	local tag = skynet.tracetag()
	check.ok("trace sets a tag naming this service", type(tag) == "string"
		and tag:sub(1, 9) == skynet.address(skynet.self()) and tag:find(" check$"), tag)
	check.values("calls work while tracing", table.pack(skynet.call(pong, "lua", "ECHO", 5)), table.pack(5))

	-- unknown requests and responses reach the replaceable handlers
	skynet.dispatch_unknown_request(function(session, address, msg, sz, prototype)
		unknown_requests[#unknown_requests + 1] = prototype .. ":" .. skynet.tostring(msg, sz)
	end)
	skynet.dispatch_unknown_response(function(session, address, msg, sz)
		unknown_responses[#unknown_responses + 1] = session .. ":" .. skynet.tostring(msg, sz)
	end)
	require("skynet.core").send(skynet.self(), skynet.PTYPE_TEXT, 0, "stray text")
	skynet.redirect(skynet.self(), pong, "response", 987654, "stray answer")
	skynet.sleep(2)
	check.eq("dispatch_unknown_request gets an unregistered type", unknown_requests[1], "0:stray text")
	check.eq("dispatch_unknown_response gets an unknown session", unknown_responses[1], "987654:stray answer")

	-- debug protocol: TASK with a session, UNIQTASK, KILLTASK, LINK, TERM
	local sleeper = skynet.newservice("pong")
	skynet.fork(function() pcall(skynet.call, sleeper, "lua", "SLEEP", 1000) end)
	skynet.fork(function() pcall(skynet.call, sleeper, "lua", "SLEEP", 1000) end)
	skynet.sleep(2)
	local tasks = skynet.call(sleeper, "debug", "TASK")
	local count, one = 0, nil
	for key in pairs(tasks) do
		count = count + 1
		one = one or tonumber(key:match("session: (%d+)$"))
	end
	check.eq("debug TASK lists the two sleeping requests", count, 2)
	check.ok("debug TASK with a session gives a traceback",
		tostring(skynet.call(sleeper, "debug", "TASK", one)):find("traceback") ~= nil)
	local uniq = skynet.call(sleeper, "debug", "UNIQTASK")
	local heads, counted = {}, 0
	for head, stack in pairs(uniq) do
		heads[#heads + 1] = head
		counted = counted + tonumber(head:match("^(%d+) : "))
		check.ok("debug UNIQTASK gives each stack once", stack:find("traceback") ~= nil, stack)
	end
	check.eq("debug UNIQTASK counts both requests", counted, 2)
	check.eq("debug KILLTASK of an unknown thread says so",
		skynet.call(sleeper, "debug", "KILLTASK", "thread: nowhere"), "Not found")
	local linked
	skynet.fork(function() linked = pcall(skynet.call, sleeper, "debug", "LINK") end)
	skynet.sleep(1)
	check.eq("debug LINK waits while the service lives", linked, nil)
	skynet.kill(sleeper)
	skynet.sleep(2)
	check.eq("debug LINK fails when the service ends", linked, false)

	-- term: calls to a service known to be gone fail at once, though it never answered
	local slow_one = skynet.newservice("pong")
	local termed
	skynet.fork(function() termed = table.pack(pcall(skynet.call, slow_one, "lua", "SLEEP", 1000)) end)
	skynet.sleep(1)
	check.eq("a call is pending", termed, nil)
	skynet.term(slow_one)
	skynet.sleep(1)
	check.ok("term fails the pending call", termed and termed[1] == false
		and tostring(termed[2]):find("call failed", 1, true), termed and tostring(termed[2]))
	check.values("the service itself lives on", table.pack(skynet.call(slow_one, "lua", "ECHO", 1)), table.pack(1))

	check.done()
end)
