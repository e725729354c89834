-- skynet.snax: newservice/uniqueservice/globalservice/queryservice/bind/self/exit/kill,
-- accept and response methods, init and exit, hotfix, profile_info, the snax search path
-- and the service's own directory.
local skynet = require "skynet"
local snax = require "skynet.snax"
local datacenter = require "skynet.datacenter"
local check = require "check"

skynet.start(function()
	local c = snax.newservice("counter", 5, "first")
	check.eq("init ran with the arguments", datacenter.get("counter", "first"), "started")
	check.eq("a response method answers", c.req.get(), 5)
	check.eq("post returns nothing", select("#", c.post.add(3)), 0)
	check.eq("a post is handled in order before the next request", c.req.get(), 8)
	check.raises("an unknown request raises", "request counter:nope no exist", function()
		return c.req.nope()
	end)
	check.raises("an unknown post raises", "post counter:nope no exist", function()
		c.post.nope()
	end)
	check.raises("a response method's error fails the call", "call failed", c.req.fail)
	check.eq("the service survives its method's error", c.req.get(), 8)
	check.eq("modules come from the service's own directory", c.req.helper(), "counter's helper")
	local text, name, own_dir = c.req.whoami()
	check.eq("snax.self inside is this service", text, tostring(c))
	check.eq("SERVICE_NAME is the snax name", name, "counter")
	check.eq("SERVICE_PATH is the snax file's directory", own_dir, true)
	check.eq("tostring of an object", tostring(c), string.format("[counter:%x]", c.handle))
	check.eq("bind gives the cached object", snax.bind(c.handle, "counter"), c)

	-- requests run concurrently, as skynet's
	local slow
	skynet.fork(function() slow = c.req.slow_get(20) end)
	skynet.sleep(1)
	c.post.add(1)
	check.eq("a request answers while another sleeps", c.req.get(), 9)
	skynet.sleep(30)
	check.eq("the sleeping request saw the later post", slow, 9)

	-- profile_info: method -> count, time
	local info = snax.profile_info(c)
	check.eq("profile_info counts each method", info.add.count, 2)
	check.ok("profile_info has times", type(info.get.time) == "number" and info.get.time >= 0)
	check.ok("time spent sleeping is not counted", info.slow_get.time < 0.2, info.slow_get.time)
	local debug_info = skynet.call(c.handle, "debug", "INFO")
	check.eq("debug INFO is the profile table", debug_info.get.count, info.get.count)

	-- hotfix: a patch replaces methods; its free names join the old upvalues
	local old = snax.hotfix(c, [[
		local count, step
		function accept.add(n)
			count = count + n * step * 10
		end
		function hotfix(new_step)
			local was = step
			step = new_step
			return was, count
		end
	]], 2)
	check.eq("hotfix returns what the patch's hotfix returned", old, 1)
	c.post.add(1)
	check.eq("the patched method shares the state", c.req.get(), 9 + 20)
	check.raises("a patch naming an unknown method fails", "Patch mismatch", snax.hotfix, c,
		"function response.unknown() end")
	check.eq("a failed patch changes nothing", c.req.get(), 29)

	-- unique and global services
	local u = snax.uniqueservice("counter", 100, "unique")
	check.eq("uniqueservice starts one", snax.uniqueservice("counter", 0, "again").handle, u.handle)
	check.eq("queryservice finds it", snax.queryservice("counter").handle, u.handle)
	check.ok("the unique one is not the first", u.handle ~= c.handle)
	check.eq("the unique one was initialized once", u.req.get(), 100)
	local g = snax.globalservice("counter", 7, "global")
	check.eq("queryglobal finds the global one", snax.queryglobal("counter").handle, g.handle)
	check.eq("the global one answers", g.req.get(), 7)

	-- exits: kill from outside, exit from inside (through a post)
	snax.kill(u, "killed")
	check.eq("kill runs the exit function", datacenter.get("counter", "exit"), "killed")
	c.post.quit("asked")
	skynet.sleep(10)
	check.eq("exit from inside runs the exit function", datacenter.get("counter", "exit"), "asked")
	check.raises("a call to an exited snax service fails", "call", c.req.get)

	-- bad snax files
	check.raises("a duplicate method fails the interface", "response.x duplicate definition",
		snax.interface, "duplicate")
	check.raises("a missing snax file names the paths tried", "cannot open", snax.newservice,
		"no_such_snax")
	check.done()
end)
