-- Benchmark driver (host/benches/node.rs, "lua-"): answers CALLS n (n sequential calls to a
-- Lua pong), SENDS n (n one-way sends, then one call to wait for them) and SPAWN n (n idle
-- Lua services through the launcher), each with the nanoseconds it took; PINGALL calls every
-- spawned service.
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

local spawned = {}

function CMD.SPAWN(n)
	local started = skynet.hpc()
	for i = 1, n do
		spawned[i] = skynet.newservice("bench_idle")
	end
	return skynet.hpc() - started
end

-- Every service SPAWN started answers a debug PING; how many did.
function CMD.PINGALL()
	local answered = 0
	for _, service in ipairs(spawned) do
		skynet.call(service, "debug", "PING")
		answered = answered + 1
	end
	return answered
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, n)
		skynet.retpack(CMD[cmd](n))
	end)
end)
