-- How a message ends in skynet.lua's dispatch, each way: skynet.core does the common ones
-- natively (lua-wasm/src/dispatch.rs) and hands the rest to skynet.lua, so both halves and
-- their seams are checked here: errors inside dispatch with forks queued, deferred
-- responses, wait and wakeup, killed coroutines, traced requests, protocols without a
-- dispatch or with their own unpack, many values, an empty coroutine pool, exit with forks.
local skynet = require "skynet"
local check = require "check"

local fork_ran_after_exit = 0
local stray_responses = 0

skynet.register_protocol {
	name = "raw",
	id = 202,
	unpack = skynet.unpack,
}
skynet.register_protocol {
	name = "odd",
	id = 200,
	pack = skynet.pack,
	unpack = skynet.unpack,
}
skynet.register_protocol {
	name = "nodispatch",
	id = 201,
	pack = skynet.pack,
	unpack = skynet.unpack,
}
skynet.register_protocol {
	name = "notcallable",
	id = 203,
	pack = skynet.pack,
	unpack = skynet.unpack,
}
skynet.register_protocol {
	name = "inherited",
	id = 204,
	pack = skynet.pack,
	unpack = skynet.unpack,
}

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "FORK_RAN" then
			fork_ran_after_exit = fork_ran_after_exit + 1
		end
	end)
	skynet.dispatch_unknown_response(function()
		stray_responses = stray_responses + 1
	end)
	local peer = skynet.newservice("dispatch_peer")

	-- an error inside dispatch: the caller fails, the forks queued before it still run
	check.raises("an error in a handler fails the call", "call failed",
		skynet.call, peer, "lua", "FAIL_AFTER_FORK", "one")
	check.eq("a fork queued before the error ran", skynet.call(peer, "lua", "FORKED", "one"), true)
	check.eq("the service answers after the error", skynet.call(peer, "lua", "COUNT_ARGS", 1), 1)

	-- skynet.response: answered by another request's coroutine
	local held
	skynet.fork(function()
		held = skynet.call(peer, "lua", "HOLD")
	end)
	skynet.yield()
	check.values("a deferred response answers once, then TEST says it is spent",
		table.pack(skynet.call(peer, "lua", "RELEASE", "kept")), table.pack(true, false))
	skynet.yield()
	check.eq("the held call got the deferred answer", held, "kept")

	-- a request its handler forgets to answer is logged when the handler ends (the test
	-- in tests/blackbox/lua.rs reads the log); its caller is let go of here
	local forgotten = skynet.fork(function()
		skynet.call(peer, "lua", "FORGET")
	end)
	skynet.sleep(1)
	check.eq("the caller of a forgotten request still waits", skynet.killthread(forgotten), forgotten)

	-- skynet.wait in one request, skynet.wakeup in the next
	local woken
	skynet.fork(function()
		woken = skynet.call(peer, "lua", "WAIT")
	end)
	skynet.yield()
	check.eq("wakeup finds the waiting coroutine", skynet.call(peer, "lua", "WAKE"), true)
	skynet.sleep(1)
	check.eq("the waiting request runs on and answers", woken, "woken")

	-- killed coroutines: a caller killed while its call is in flight drops the answer
	-- quietly; a request handler killed while it sleeps fails its caller
	local killed_call_returned = false
	local caller = skynet.fork(function()
		skynet.call(peer, "lua", "PARK", 2, "late")
		killed_call_returned = true
	end)
	skynet.yield()
	check.eq("killthread stops a coroutine waiting for an answer", skynet.killthread(caller), caller)
	skynet.sleep(5)
	check.eq("the killed call never returns", killed_call_returned, false)
	check.eq("its late answer is dropped, not an unknown response", stray_responses, 0)
	local handled
	skynet.fork(function()
		handled = table.pack(pcall(skynet.call, peer, "lua", "HANDLING", "h"))
	end)
	skynet.yield()
	check.eq("killthread stops a request being handled", skynet.call(peer, "lua", "KILL", "h"), true)
	skynet.sleep(1)
	check.ok("its caller gets call failed", handled and handled[1] == false
		and tostring(handled[2]):find("call failed", 1, true), handled and tostring(handled[2]))

	-- protocols: one the callee never registered, one without dispatch, one with its own unpack
	check.raises("a request of an unknown protocol fails", "call failed", skynet.call, peer, "odd", 1)
	check.raises("a request of a protocol without dispatch fails", "call failed",
		skynet.call, peer, "nodispatch", 1)
	check.values("a protocol's own unpack gives the handler its values",
		table.pack(skynet.unpack(skynet.rawcall(peer, "raw", skynet.pack("middle")))),
		table.pack("first", skynet.packstring("middle"), "last"))

	check.raises("a request to a dispatch that cannot be called fails", "call failed",
		skynet.call, peer, "notcallable", 1)
	check.values("a class whose dispatch comes from its metatable still dispatches",
		table.pack(skynet.call(peer, "inherited", 7)), table.pack("inherited", 7))
	check.eq("the service lives on", skynet.call(peer, "lua", "COUNT_ARGS", 1), 1)

	-- many values into a handler's coroutine
	local many = {}
	for i = 1, 250 do
		many[i] = i
	end
	check.values("250 values reach the handler", table.pack(skynet.call(peer, "lua", "COUNT_ARGS",
		table.unpack(many))), table.pack(250, 250))

	-- an empty coroutine pool: 300 requests waiting at once, then 300 more reuse them
	for round = 1, 2 do
		local answered, me = 0, coroutine.running()
		for i = 1, 300 do
			skynet.fork(function()
				if skynet.call(peer, "lua", "PARK", 1, i) == i then
					answered = answered + 1
				end
				if answered == 300 then
					skynet.wakeup(me)
				end
			end)
		end
		skynet.wait(me)
		check.eq("300 concurrent requests answered, round " .. round, answered, 300)
	end

	-- traced requests: the callee sees the caller's tag, or none once it turns tracing off
	skynet.trace("dispatch")
	local tag = skynet.tracetag()
	check.eq("a traced call carries its tag to the callee", skynet.call(peer, "lua", "TAG"), tag)
	check.eq("traceproto(false) in the callee", skynet.call(peer, "lua", "TRACE_OFF"), true)
	check.eq("forces tracing off for its requests", skynet.call(peer, "lua", "TAG"), false)

	-- exit drops the forks it queued
	check.raises("exit fails the call that asked for it", "call failed",
		skynet.call, peer, "lua", "EXIT_WITH_FORK", skynet.self())
	skynet.sleep(5)
	check.eq("a fork queued before exit never runs", fork_ran_after_exit, 0)

	check.done()
end)
