-- The callee of test_dispatch.lua: each command exercises one way a message can end in
-- skynet.lua's dispatch (lua-wasm/src/dispatch.rs does the common ones natively).
local skynet = require "skynet"

local forked = {}
local held
local handling = {}

skynet.register_protocol {
	name = "raw",
	id = 202,
	unpack = function(msg, sz)
		return "first", skynet.tostring(msg, sz), "last"
	end,
	dispatch = function(_, _, a, b, c)
		skynet.ret(skynet.pack(a, b, c))
	end,
}
skynet.register_protocol {
	name = "nodispatch",
	id = 201,
	pack = skynet.pack,
	unpack = skynet.unpack,
}

-- Protocol classes a hostile or careless script could make: a `dispatch` that cannot be
-- called, and one found only through a metatable (skynet.lua reads it; the native path
-- hands such a class back to skynet.lua).
skynet.register_protocol {
	name = "notcallable",
	id = 203,
	unpack = skynet.unpack,
	dispatch = 42,
}
skynet.register_protocol(setmetatable({ name = "inherited", id = 204 }, {
	__index = {
		unpack = skynet.unpack,
		dispatch = function(_, _, value)
			skynet.ret(skynet.pack("inherited", value))
		end,
	},
}))

local CMD = {}

function CMD.FAIL_AFTER_FORK(tag)
	skynet.fork(function()
		forked[tag] = true
	end)
	error("deliberate failure " .. tag)
end

function CMD.FORKED(tag)
	return forked[tag] == true
end

function CMD.HOLD()
	held = skynet.response()
	return "deferred"
end

function CMD.FORGET()
	return "deferred" -- neither answered nor deferred with skynet.response: logged
end

function CMD.RELEASE(value)
	local answered = held(true, value)
	return answered, held("TEST")
end

function CMD.WAIT()
	skynet.wait("token")
	return "woken"
end

function CMD.WAKE()
	return skynet.wakeup("token") == true
end

function CMD.TAG()
	return skynet.tracetag()
end

function CMD.TRACE_OFF()
	skynet.traceproto("lua", false)
	return true
end

function CMD.COUNT_ARGS(...)
	return select("#", ...), (select(select("#", ...), ...))
end

function CMD.PARK(ticks, value)
	skynet.sleep(ticks)
	return value
end

function CMD.HANDLING(key)
	handling[key] = coroutine.running()
	skynet.sleep(1000)
	return "never"
end

function CMD.KILL(key)
	return skynet.killthread(handling[key]) == handling[key]
end

function CMD.EXIT_WITH_FORK(observer)
	skynet.fork(function()
		skynet.send(observer, "lua", "FORK_RAN")
	end)
	skynet.exit()
end

skynet.start(function()
	skynet.dispatch("lua", function(session, _, cmd, ...)
		local results = table.pack(assert(CMD[cmd], cmd)(...))
		if results[1] ~= "deferred" and session ~= 0 then
			skynet.ret(skynet.pack(table.unpack(results, 1, results.n)))
		end
	end)
end)
