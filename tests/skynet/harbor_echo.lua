-- Run by a real skynet node in the harbor interop tests (tests/blackbox/harbor_interop.rs),
-- never by skywasm. It registers the global name SKYNET_ECHO and answers ECHO; then it
-- finds the skywasm node's SKYWASM_ECHO with harbor.queryname, calls it by address and by
-- name, and logs what came back (`INTEROP ...` lines the test waits for).
local skynet = require "skynet"
require "skynet.manager"
local harbor = require "skynet.harbor"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd == "ECHO" then
			skynet.ret(skynet.pack(...))
		else
			skynet.ret(skynet.pack(nil))
		end
	end)
	skynet.register("SKYNET_ECHO")
	skynet.error("INTEROP READY " .. skynet.address(skynet.self()))
	skynet.fork(function()
		local sky = harbor.queryname("SKYWASM_ECHO")
		skynet.error("INTEROP FOUND " .. skynet.address(sky))
		local got = skynet.call(sky, "lua", "ECHO", "by address")
		skynet.error("INTEROP ADDRESS " .. tostring(got))
		got = skynet.call("SKYWASM_ECHO", "lua", "ECHO", "by name")
		skynet.error("INTEROP NAME " .. tostring(got))
		for i = 1, 100 do
			skynet.send(sky, "lua", "NOTE", i)
		end
		local notes, disorder = skynet.call(sky, "lua", "NOTES")
		skynet.error("INTEROP NOTES " .. tostring(notes) .. " " .. tostring(disorder))
	end)
end)
