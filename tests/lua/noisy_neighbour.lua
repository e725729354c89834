-- Benchmark noise (host/benches/node.rs, "noisy"): the start service of a hostile tenant. For
-- as long as the node runs it keeps one service in an endless loop (a new one each time the
-- CPU limit ends the last), bombs memory in another and floods a third with sends.
local skynet = require "skynet"
require "skynet.manager"

local function endless_loops()
	while true do
		local ok, looper = pcall(skynet.newservice, "looper")
		if ok then
			pcall(skynet.call, looper, "lua", "LOOP_STUBBORN")
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

-- The kinds of noise to make: any of "loop", "bomb", "flood".
local wanted = { ... }

skynet.start(function()
	local noise = {}
	for _, what in ipairs(wanted) do
		noise[what] = true
	end
	if noise.loop then skynet.fork(endless_loops) end
	if noise.bomb then skynet.fork(memory_bombs) end
	if noise.flood then skynet.fork(flood, skynet.newservice("bench_pong")) end
end)
