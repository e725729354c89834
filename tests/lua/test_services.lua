-- newservice, uniqueservice, queryservice, datacenter, skynet.queue, skynet.manager, names,
-- env and the debug protocol.
local skynet = require "skynet"
require "skynet.manager"
local datacenter = require "skynet.datacenter"
local queue = require "skynet.queue"
local check = require "check"

skynet.start(function()
	-- newservice: arguments are stringified and re-split on spaces
	local echo = skynet.newservice("args_echo", 1, "two words", 3.5)
	check.values("newservice arguments are strings split on spaces",
		table.pack(skynet.call(echo, "lua")), table.pack(4, "1", "two", "words", "3.5"))
	check.raises("newservice fails when start raised", "call failed", skynet.newservice, "fails_start")
	check.raises("newservice fails for a missing script", "call failed", skynet.newservice, "no_such_script")

	-- uniqueservice: concurrent launches start one instance; queryservice waits for it
	local got, queried = {}, nil
	skynet.fork(function() queried = skynet.queryservice("slow_unique") end)
	for i = 1, 3 do
		skynet.fork(function() got[i] = skynet.uniqueservice("slow_unique") end)
	end
	skynet.sleep(30)
	check.ok("concurrent uniqueservice calls get one address",
		got[1] and got[1] == got[2] and got[2] == got[3], tostring(got[1]) .. " " .. tostring(got[2]))
	check.eq("queryservice waited for the later uniqueservice", queried, got[1])
	check.eq("the unique service started once", datacenter.get("slow_unique", "starts"), 1)
	check.eq("uniqueservice again returns the same", skynet.uniqueservice("slow_unique"), got[1])
	local global = skynet.uniqueservice(true, "args_echo", "g")
	check.eq("global uniqueservice and queryservice agree", skynet.queryservice(true, "args_echo"), global)

	-- datacenter
	check.eq("datacenter get of a missing key is nil", datacenter.get("nothing"), nil)
	datacenter.set("a", "b", 42)
	check.eq("datacenter set then get", datacenter.get("a", "b"), 42)
	check.eq("datacenter get of a branch", datacenter.get("a").b, 42)
	local waited
	skynet.fork(function() waited = datacenter.wait("later", "key") end)
	skynet.sleep(2)
	check.eq("datacenter wait blocks until set", waited, nil)
	datacenter.set("later", "key", "value")
	skynet.sleep(2)
	check.eq("datacenter wait returns the value", waited, "value")

	-- skynet.queue: a critical section
	local cs = queue()
	local trace = {}
	for i = 1, 3 do
		skynet.fork(cs, function()
			trace[#trace + 1] = "in" .. i
			skynet.sleep(1)
			trace[#trace + 1] = "out" .. i
		end)
	end
	skynet.sleep(10)
	check.eq("queue runs one at a time, in order", table.concat(trace, " "), "in1 out1 in2 out2 in3 out3")

	-- manager and names
	local pong = skynet.launch("snlua", "pong")
	check.ok("launch returns an address", type(pong) == "number")
	skynet.name(".pong_name", pong)
	check.eq("name binds a local name", skynet.localname(".pong_name"), pong)
	check.eq("calls by name", skynet.call(".pong_name", "lua", "ECHO", "by name"), "by name")
	skynet.name("GLOBALPONG", pong)
	check.eq("calls by global name", skynet.call("GLOBALPONG", "lua", "ECHO", "global"), "global")
	skynet.register(".me")
	check.eq("register names self", skynet.localname(".me"), skynet.self())
	check.eq("address formats handles", skynet.address(0x0a), ":0000000a")
	local harbor_id, remote = skynet.harbor(skynet.self())
	check.ok("harbor of self is local", harbor_id == 0 and remote == false)
	skynet.kill(pong)
	skynet.sleep(2)
	check.raises("a killed service is gone", "call to invalid address", skynet.call, pong, "lua", "ECHO")

	-- env
	check.eq("getenv returns strings", skynet.getenv("thread"), "2")
	skynet.setenv("lua_test_key", "v")
	check.eq("setenv sets", skynet.getenv("lua_test_key"), "v")
	check.raises("setenv on an existing key raises", "Can't setenv exist key", skynet.setenv, "lua_test_key", "w")

	-- the debug protocol
	local target = skynet.newservice("pong")
	check.eq("debug MEM answers kilobytes", type(skynet.call(target, "debug", "MEM")), "number")
	local stat = skynet.call(target, "debug", "STAT")
	check.ok("debug STAT answers task and mqlen", type(stat.task) == "number" and type(stat.mqlen) == "number")
	check.eq("debug SUPPORT lua", skynet.call(target, "debug", "SUPPORT", "lua"), true)
	check.eq("debug SUPPORT unknown", skynet.call(target, "debug", "SUPPORT", "nothing"), false)
	check.values("debug PING answers", table.pack(skynet.call(target, "debug", "PING")), table.pack())
	local ok, output = skynet.call(target, "debug", "RUN", "print(1 + 1) print(SERVICE_NAME)", "=test")
	check.ok("debug RUN runs code in the service", ok and output == "2\npong", tostring(output))
	check.eq("debug INFO without info_func", skynet.call(target, "debug", "INFO"), nil)
	check.eq("debug TASK lists nothing when idle", next(skynet.call(target, "debug", "TASK")), nil)
	skynet.send(target, "debug", "GC")
	skynet.send(target, "debug", "EXIT")
	skynet.sleep(2)
	check.raises("debug EXIT ends the service", "call to invalid address", skynet.call, target, "lua", "ECHO")

	check.done()
end)
