-- skynet.service: new (once per name, concurrent callers share the one start), query
-- (waits for a later new), close, a main function with upvalues refused, a failing main
-- function, and service_provider's debug INFO.
local skynet = require "skynet"
local service = require "skynet.service"
local check = require "check"

-- Runs in its own service: no upvalue but _ENV.
local function kv_main(greeting)
	local skynet = require "skynet"
	local datacenter = require "skynet.datacenter"
	datacenter.set("kv_starts", (datacenter.get("kv_starts") or 0) + 1)
	local db = { greeting = greeting }
	skynet.start(function()
		skynet.dispatch("lua", function(_, _, cmd, key, value)
			if cmd == "set" then
				db[key] = value
				skynet.ret()
			else
				skynet.ret(skynet.pack(db[key]))
			end
		end)
	end)
end

local function failing_main()
	error("main refuses to start")
end

skynet.start(function()
	local queried
	skynet.fork(function()
		queried = service.query("kv")
	end)
	local got = {}
	for i = 1, 3 do
		skynet.fork(function()
			got[i] = service.new("kv", kv_main, "hello")
		end)
	end
	skynet.sleep(20)
	check.ok("concurrent new calls get one address", got[1] and got[1] == got[2] and got[2] == got[3])
	check.eq("query waited for the later new", queried, got[1])
	local datacenter = require "skynet.datacenter"
	check.eq("the main function ran once", datacenter.get("kv_starts"), 1)
	local kv = got[1]
	check.eq("the main function got new's arguments", skynet.call(kv, "lua", "get", "greeting"), "hello")
	skynet.call(kv, "lua", "set", "a", 1)
	check.eq("the service keeps state", skynet.call(kv, "lua", "get", "a"), 1)
	check.eq("new again returns the running one", service.new("kv", kv_main), kv)

	local upvalue = 1
	check.raises("a main function with upvalues is refused", "upvalue", service.new, "bad",
		function() return upvalue end)
	check.raises("a failing main function fails new", "call failed", service.new,
		"broken", failing_main)
	check.raises("and query then fails too", "call failed", service.query, "broken")

	local provider = skynet.queryservice("service_provider")
	local info = skynet.call(provider, "debug", "INFO")
	local entry = info[skynet.address(kv)]
	check.eq("provider INFO lists the service", entry and entry.name, "kv")
	check.eq("provider INFO has new's arguments", entry and entry.init, "hello")

	check.eq("close of an unknown name is false", service.close("nothing"), false)
	check.eq("close of a running one is true", service.close("kv"), true)
	skynet.sleep(5)
	check.raises("the closed service is gone", "call", skynet.call, kv, "lua", "get", "a")
	local again = service.new("kv", kv_main, "again")
	check.ok("new after close starts a new one", again ~= kv)
	check.eq("the main function ran again", datacenter.get("kv_starts"), 2)
	check.done()
end)
