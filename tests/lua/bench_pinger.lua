-- Benchmark driver (host/benches/node.rs, "lua-"): answers CALLS n (n sequential calls to a
-- Lua pong), SENDS n (n one-way sends, then one call to wait for them) and SPAWN n (n idle
-- Lua services through the launcher), each with the nanoseconds it took.
local skynet = require "skynet"

local pong

local function ensure_pong()
	if not pong then
		pong = skynet.newservice("bench_pong")
	end
	return pong
end

local CMD = {}

function CMD.CALLS(n)
	local target = ensure_pong()
	local started = skynet.hpc()
	for i = 1, n do
		skynet.call(target, "lua", "PING", i)
	end
	return skynet.hpc() - started
end

function CMD.SENDS(n)
	local target = ensure_pong()
	local started = skynet.hpc()
	for i = 1, n do
		skynet.send(target, "lua", "NOTE", i)
	end
	skynet.call(target, "lua", "PING", 0)
	return skynet.hpc() - started
end

function CMD.SPAWN(n)
	local started = skynet.hpc()
	for _ = 1, n do
		skynet.newservice("bench_idle")
	end
	return skynet.hpc() - started
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, n)
		skynet.retpack(CMD[cmd](n))
	end)
end)
