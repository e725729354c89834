-- skynet.profile: start/stop per coroutine, time suspended not counted (in skynet.lua's
-- coroutines, resumed by the native dispatch, and in coroutines resumed from Lua), the
-- errors, and coroutine.resume / coroutine.wrap replaced as in skynet.
local skynet = require "skynet"
local profile = require "skynet.profile"
local check = require "check"

local function spin(seconds)
	local until_time = skynet.hpc() + seconds * 1e9
	while skynet.hpc() < until_time do end
end

skynet.start(function()
	check.eq("coroutine.resume is profile.resume", coroutine.resume, profile.resume)
	check.eq("coroutine.wrap is profile.wrap", coroutine.wrap, profile.wrap)

	profile.start()
	check.raises("start twice raises", "start profile more than once", profile.start)
	spin(0.01)
	skynet.sleep(30) -- suspended: the native dispatch resumes this coroutine
	local t = profile.stop()
	check.ok("stop counts the time run", t >= 0.01, t)
	check.ok("stop does not count the time suspended", t < 0.3, t)
	check.raises("stop without start raises", "Call profile.start() before profile.stop()", profile.stop)

	-- a coroutine resumed from Lua, profiled by its thread
	local co = coroutine.create(function()
		spin(0.01)
		coroutine.yield(1)
		spin(0.01)
		return 2
	end)
	profile.start(co)
	check.values("resume returns what the coroutine yields", table.pack(coroutine.resume(co)),
		table.pack(true, 1))
	skynet.sleep(30)
	check.values("and what it returns", table.pack(coroutine.resume(co)), table.pack(true, 2))
	local ct = profile.stop(co)
	check.ok("a coroutine's time counts both runs", ct >= 0.02, ct)
	check.ok("but not the time between them", ct < 0.3, ct)
	check.values("resuming a dead coroutine fails", table.pack(coroutine.resume(co)),
		table.pack(false, "cannot resume dead coroutine"))
	check.raises("start of a non-thread raises", "thread expected", profile.start, 1)

	-- coroutine.wrap: values, and errors with the position
	local gen = coroutine.wrap(function(a)
		local b = coroutine.yield(a + 1)
		error("wrapped " .. b)
	end)
	check.eq("wrap yields", gen(1), 2)
	check.raises("wrap raises the coroutine's error", "wrapped x", gen, "x")
	check.raises("a dead wrapped coroutine raises", "cannot resume dead coroutine", gen)
	local closed = false
	local gen2 = coroutine.wrap(function()
		local _ <close> = setmetatable({}, { __close = function() closed = true end })
		error("boom")
	end)
	pcall(gen2)
	check.ok("an error in a wrapped coroutine closes its variables", closed)
	check.done()
end)
