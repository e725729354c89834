-- Tenant test: the start service of the untrusted tenant `evil`. It tries one attack after
-- another and logs what it saw as `OBSERVED name ok|error detail`; the black-box test reads
-- the log and checks the node, the victim and the other tenants.
local skynet = require "skynet"
require "skynet.manager"

local function try(name, f, ...)
	local ok, result = pcall(f, ...)
	skynet.error("OBSERVED", name, ok and "ok" or "error", tostring(result))
end

skynet.start(function()
	skynet.register(".evil")
	while not skynet.localname(".good") do
		skynet.sleep(1)
	end
	try("call_exported", skynet.call, ".good", "lua", "PING")
	-- calm's unexported name is in calm's own name space
	local private
	repeat
		private = skynet.call(".good", "lua", "PRIVATE")
		if not private then
			skynet.sleep(1)
		end
	until private
	try("private_name_hidden", function() return skynet.localname(".good_private") == nil end)
	try("squat_private", function()
		skynet.register(".good_private")
		return skynet.localname(".good_private") == skynet.self()
	end)
	try("send_unexported", skynet.send, private, "lua", "PING")
	try("debug_to_exported", skynet.send, ".good", "debug", "PING")
	try("abort", skynet.abort)
	try("squat", function()
		skynet.register(".good")
		return skynet.address(skynet.localname(".good"))
	end)
	try("getenv_secret", skynet.getenv, "secret")
	try("getenv_runtime", function() return skynet.getenv("luaservice") ~= nil end)
	try("setenv", skynet.setenv, "planted", "1")
	try("kill_launcher", function()
		skynet.kill(".launcher")
		return skynet.localname(".launcher") ~= nil
	end)
	try("launcher_list", skynet.call, ".launcher", "lua", "LIST")
	try("redirect", skynet.redirect, ".good", skynet.localname(".launcher"), "lua", 0, skynet.pack("PING"))
	try("big_message", skynet.send, ".good", "lua", string.rep("x", 100000))
	try("launch_denied", skynet.newservice, "pong")
	local looper = skynet.newservice("looper")
	try("loop_pcall", skynet.call, looper, "lua", "LOOP_PCALL")
	try("loop", skynet.call, looper, "lua", "LOOP")
	try("loop_stubborn", skynet.call, looper, "lua", "LOOP_STUBBORN")
	try("deep_recursion", function()
		local function deeper(n) return deeper(n + 1) + 1 end
		return deeper(1)
	end)
	try("deep_c_recursion", function()
		local function nest(n)
			local ok, err = pcall(nest, n + 1)
			if not ok then
				error(err, 0)
			end
		end
		nest(1)
	end)
	try("alive_after_recursion", function() return "still here" end)
	local hog = skynet.newservice("memory_hog")
	try("memory_bomb", function()
		return select(2, skynet.call(hog, "lua", "GROW", 64))
	end)
	try("flood", function()
		local sent = 0
		local ok, err = pcall(function()
			for _ = 1, 1000000 do
				skynet.send(".good", "lua", "NOTE")
				sent = sent + 1
			end
		end)
		return string.format("sent %d %s", sent, ok and "" or err)
	end)
	try("spawn_bomb", function()
		for _ = 1, 50 do
			skynet.newservice("looper")
		end
	end)
	skynet.error("ATTACKS DONE")
end)
