-- Benchmark driver (host/benches/node.rs, "cluster"): cluster calls and pushes to node "db"'s
-- "@echo" (tests/lua/cluster_server.lua). SEQ n: n sequential calls, answers the elapsed ns
-- and the 50th and 99th percentile latencies (ns); CONC callers n: `callers` coroutines
-- making n sequential calls each, answers the elapsed ns; SENDS n: n pushes then a call
-- that arrives after them, answers the elapsed ns.
local skynet = require "skynet"
local cluster = require "skynet.cluster"

local CMD = {}

function CMD.SEQ(n)
	local latencies = {}
	local started = skynet.hpc()
	for i = 1, n do
		local t = skynet.hpc()
		cluster.call("db", "@echo", "ECHO", i)
		latencies[i] = skynet.hpc() - t
	end
	local elapsed = skynet.hpc() - started
	table.sort(latencies)
	return elapsed, latencies[math.max(1, n // 2)], latencies[math.max(1, math.ceil(n * 0.99))]
end

function CMD.CONC(callers, n)
	local me = coroutine.running()
	local done = 0
	local started = skynet.hpc()
	for _ = 1, callers do
		skynet.fork(function()
			for i = 1, n do
				cluster.call("db", "@echo", "ECHO", i)
			end
			done = done + 1
			if done == callers then
				skynet.wakeup(me)
			end
		end)
	end
	skynet.wait(me)
	return skynet.hpc() - started
end

function CMD.SENDS(n)
	local started = skynet.hpc()
	local _, before = cluster.call("db", "@echo", "NOTES")
	for i = 1, n do
		cluster.send("db", "@echo", "NOTE", i)
	end
	cluster.call("db", "@echo", "NOTES")
	return skynet.hpc() - started, before
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.retpack(CMD[cmd](...))
	end)
end)
