-- skynet.coroutine: user coroutines that call other services inside them.
local skynet = require "skynet"
local scoroutine = require "skynet.coroutine"
local check = require "check"

skynet.start(function()
	local pong = skynet.newservice("pong")
	local co = scoroutine.create(function(a)
		local answer = skynet.call(pong, "lua", "ECHO", a)
		local b = scoroutine.yield(answer, "first")
		skynet.sleep(1)
		return "end", b
	end)
	check.values("a call inside a skynet.coroutine, then a user yield",
		table.pack(scoroutine.resume(co, "hello")), table.pack(true, "hello", "first"))
	check.eq("status after a user yield", scoroutine.status(co), "suspended")
	check.values("sleep inside, then return", table.pack(scoroutine.resume(co, "second")),
		table.pack(true, "end", "second"))
	check.eq("status at the end", scoroutine.status(co), "dead")
	local ok, err = scoroutine.resume(co)
	check.ok("resuming a dead coroutine fails", not ok and err:find("dead", 1, true) ~= nil, err)

	local gen = scoroutine.wrap(function()
		for i = 1, 3 do
			scoroutine.yield(skynet.call(pong, "lua", "ECHO", i * 10))
		end
	end)
	check.values("wrap yields values fetched by calls", table.pack(gen(), gen(), gen()), table.pack(10, 20, 30))

	local root, is_service = scoroutine.thread()
	check.ok("thread of a service coroutine is itself", is_service and root == coroutine.running())
	local inner_root
	local inner = scoroutine.create(function() inner_root = scoroutine.thread() end)
	scoroutine.resume(inner)
	check.eq("thread inside a skynet.coroutine is the service coroutine", inner_root, coroutine.running())

	local plain = coroutine.create(function() end)
	local ok2, err2 = scoroutine.resume(plain)
	check.ok("a plain coroutine is refused", not ok2 and err2:find("none skynet coroutine", 1, true) ~= nil, err2)
	local failing = scoroutine.create(function() error("inside", 0) end)
	check.values("errors come back from resume", table.pack(scoroutine.resume(failing)), table.pack(false, "inside"))

	check.done()
end)
