-- Cluster test (tests/blackbox/cluster.rs): the calling side, driven over "lua" by the test.
-- Each command runs one cluster operation and answers what came of it; calls answer
-- `true, results...` or `false, error text`.
local skynet = require "skynet"
local cluster = require "skynet.cluster"

local CMD = {}

function CMD.RELOAD(config)
	return cluster.reload(config)
end

function CMD.CALL(node, address, ...)
	return pcall(cluster.call, node, address, ...)
end

-- A call from a traced coroutine: its tag travels with the request.
function CMD.TRACED(node, address, ...)
	skynet.trace("from the driver")
	return pcall(cluster.call, node, address, ...)
end

function CMD.CALL_TIMEOUT(ti, node, address, ...)
	return pcall(cluster.call_timeout, ti, node, address, ...)
end

function CMD.SEND(node, address, ...)
	cluster.send(node, address, ...)
	return true
end

-- n pushes NOTE 1..n, then a call, so they have all arrived when this answers.
function CMD.PUSHES(node, address, n)
	for i = 1, n do
		cluster.send(node, address, "NOTE", i)
	end
	return pcall(cluster.call, node, address, "NOTES")
end

function CMD.QUERY(node, name)
	return pcall(cluster.query, node, name)
end

function CMD.PROXY(...)
	return pcall(cluster.proxy, ...)
end

function CMD.PROXY_CALL(proxy, ...)
	return pcall(skynet.call, proxy, "lua", ...)
end

-- n calls at once, which the server answers once all arrived, in reverse order; answers
-- the tags in the order the replies arrived, and any failure.
function CMD.CONCURRENT(node, address, n)
	local order, failures, done = {}, {}, 0
	local me = coroutine.running()
	for i = 1, n do
		skynet.fork(function()
			local ok, tag = pcall(cluster.call, node, address, "HOLD", i, n)
			if ok then
				order[#order + 1] = tag
			else
				failures[#failures + 1] = tag
			end
			done = done + 1
			if done == n then
				skynet.wakeup(me)
			end
		end)
	end
	skynet.wait(me)
	return order, failures
end

-- Calls in flight when the peer dies: starts n slow calls and answers at once; RESULTS
-- answers what they came to, once all have ended.
local results
function CMD.INFLIGHT(node, address, n, ti)
	results = { n = n }
	for i = 1, n do
		skynet.fork(function()
			local started = skynet.now()
			local ok, err = pcall(cluster.call, node, address, "SLOW", ti, i)
			results[#results + 1] = { ok, tostring(err), skynet.now() - started }
		end)
	end
	return true
end

function CMD.CONSOLE()
	skynet.newservice("debug_console", "127.0.0.1", 0)
	return true
end

function CMD.RESULTS()
	while #results < results.n do
		skynet.sleep(1)
	end
	return results
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.retpack(CMD[cmd](...))
	end)
end)
