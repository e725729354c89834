-- skynet.mqueue (deprecated in skynet in favour of skynet.queue, kept for old code): the
-- "queue" protocol (PTYPE_QUEUE, 8). `register(f)` handles every queued message with `f`,
-- one at a time in arrival order, in one coroutine of its own; `call(addr, ...)` and
-- `send(addr, ...)` queue a message at `addr`; `size()` counts what waits here.
local skynet = require "skynet"
local c = require "skynet.core"

local mqueue = {}

local registered = false
local idle_thread
local waiting = {}

skynet.register_protocol {
	name = "queue",
	id = skynet.PTYPE_QUEUE,
	pack = skynet.pack,
	unpack = skynet.unpack,
	dispatch = function(session, source, ...)
		waiting[#waiting + 1] = { session = session, source = source, n = select("#", ...), ... }
		if idle_thread then
			local thread = idle_thread
			idle_thread = nil
			skynet.wakeup(thread)
		end
	end,
}

local function handle(f, message)
	return pcall(f, table.unpack(message, 1, message.n))
end

local function serve(f)
	while true do
		local message = table.remove(waiting, 1)
		if not message then
			idle_thread = coroutine.running()
			skynet.wait()
		elseif message.session == 0 then
			local ok, result = handle(f, message)
			if not ok or result then
				-- carry on in a new coroutine; this one reports the fault
				skynet.fork(serve, f)
				if ok then
					error(string.format("[:%x] send a message to [:%x] return something", message.source, skynet.self()))
				end
				error(string.format("[:%x] send a message to [:%x] throw an error : %s", message.source, skynet.self(), result))
			end
		else
			local data, size = skynet.pack(handle(f, message))
			c.send(message.source, skynet.PTYPE_RESPONSE, message.session, data, size)
		end
	end
end

function mqueue.register(f)
	assert(not registered, "mqueue.register: once per service")
	registered = true
	skynet.fork(serve, f)
end

local function raise_unless(ok, ...)
	if not ok then
		error(...)
	end
	return ...
end

function mqueue.call(addr, ...)
	return raise_unless(skynet.call(addr, "queue", ...))
end

function mqueue.send(addr, ...)
	return skynet.send(addr, "queue", ...)
end

function mqueue.size()
	return #waiting
end

return mqueue
