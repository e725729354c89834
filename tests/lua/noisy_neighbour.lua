-- Benchmark noise (host/benches/node.rs, "noisy"): the start service of a hostile tenant. For
-- as long as the node runs it keeps one service in an endless loop (a new one each time the
-- CPU limit ends the last), bombs memory in another and floods a third with sends. LOOPS
-- answers how long each endless loop lasted before the host ended it, in nanoseconds.
local skynet = require "skynet"
require "skynet.manager"

local loop_ns = {}

local function endless_loops()
	while true do
		local ok, looper = pcall(skynet.newservice, "looper")
		if ok then
			local started = skynet.hpc()
			pcall(skynet.call, looper, "lua", "LOOP_STUBBORN")
			loop_ns[#loop_ns + 1] = skynet.hpc() - started
		else
			skynet.sleep(1)
		end
	end
end

local function memory_bombs()
	while true do
		local ok, hog = pcall(skynet.newservice, "memory_hog")
		if ok then
			-- 1 GiB: far past the tenant's memory limit
			pcall(skynet.call, hog, "lua", "GROW", 1024)
			skynet.kill(hog)
		else
			skynet.sleep(1)
		end
	end
end

local function flood(sink)
	while true do
		pcall(function()
			for i = 1, 10000 do
				skynet.send(sink, "lua", "NOTE", i)
			end
		end)
		skynet.yield()
	end
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "LOOPS" then
			skynet.retpack(loop_ns)
		end
	end)
	skynet.fork(endless_loops)
	skynet.fork(memory_bombs)
	skynet.fork(flood, skynet.newservice("bench_pong"))
end)
