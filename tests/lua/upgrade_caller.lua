-- Upgrade test: a service that keeps calling (INC) and sending (NOTE n) to a target while it
-- is upgraded. RUN target starts the loop and answers at once; STOP ends it and answers
-- calls made, calls failed, anomalies seen (as text), notes sent and the longest time
-- between two answers (ns). RUN target cmd only calls `cmd` (for the benchmark's targets
-- that are not the counter), checking nothing but failures.
local skynet = require "skynet"

local running = false
local calls, failed, notes = 0, 0, 0
local anomalies = {}
local last_generation, last_count = 0, 0
local longest_gap = 0
local stopped

local function anomaly(text)
	if #anomalies < 20 then
		anomalies[#anomalies + 1] = text
	end
end

local function check(version, count, generation)
	if generation < last_generation then
		anomaly(string.format("generation went back from %d to %d", last_generation, generation))
	end
	if (generation % 2 == 1) ~= (version == 1) then
		anomaly(string.format("version %d answered in generation %d", version, generation))
	end
	if count <= last_count then
		anomaly(string.format("count %d after %d", count, last_count))
	end
	last_generation, last_count = generation, count
end

local function run(target, cmd)
	local counter = cmd == nil
	local last = skynet.hpc()
	while running do
		if counter then
			notes = notes + 1
			skynet.send(target, "lua", "NOTE", notes)
		end
		local ok, version, count, generation = pcall(skynet.call, target, "lua", cmd or "INC")
		calls = calls + 1
		local now = skynet.hpc()
		longest_gap = math.max(longest_gap, now - last)
		last = now
		if not ok then
			failed = failed + 1
			anomaly("call failed: " .. tostring(version))
		elseif counter then
			check(version, count, generation)
		end
	end
	skynet.wakeup(stopped)
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, target, call)
		if cmd == "RUN" then
			running = true
			skynet.fork(run, target, call)
			skynet.retpack(true)
		else
			running = false
			stopped = coroutine.running()
			skynet.wait(stopped)
			skynet.retpack(calls, failed, anomalies, notes, longest_gap)
		end
	end)
end)
