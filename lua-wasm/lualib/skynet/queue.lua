-- skynet.queue: a critical section for coroutines. `local cs = queue(); cs(f, ...)` runs f
-- after every earlier f of that queue has finished; the same coroutine may enter again.
local skynet = require "skynet"

return function()
	local current_thread
	local ref = 0
	local waiting = {}

	local function leave(ok, ...)
		ref = ref - 1
		if ref == 0 then
			current_thread = table.remove(waiting, 1)
			if current_thread then
				skynet.wakeup(current_thread)
			end
		end
		assert(ok, (...))
		return ...
	end

	return function(f, ...)
		local thread = coroutine.running()
		if current_thread and current_thread ~= thread then
			table.insert(waiting, thread)
			skynet.wait()
			assert(ref == 0) -- woken by the previous owner: the queue is ours
		end
		current_thread = thread
		ref = ref + 1
		return leave(xpcall(f, debug.traceback, ...))
	end
end
