-- skynet.mqueue: a service's queued messages handled one at a time in order by one function;
-- call answers with its results, an error in it fails the call, send queues without answer.
local skynet = require "skynet"
local mqueue = require "skynet.mqueue"
local check = require "check"

skynet.start(function()
	local worker = skynet.newservice("mqueue_worker")
	check.values("call answers", table.pack(mqueue.call(worker, "add", 2, 3)), table.pack(5))
	mqueue.send(worker, "log", "first")
	mqueue.send(worker, "log", "second")
	check.values("sends are handled in order, one at a time", table.pack(mqueue.call(worker, "logged")),
		table.pack("first,second"))
	check.raises("an error in the handler fails the call", "worker refuses", mqueue.call, worker, "fail")
	check.values("and the worker carries on", table.pack(mqueue.call(worker, "add", 1, 1)), table.pack(2))
	check.eq("size counts what waits here", mqueue.size(), 0)
	check.done()
end)
