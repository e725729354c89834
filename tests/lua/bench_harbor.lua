-- Benchmark (host/benches/node.rs, "harbor"), run unchanged by skywasm and by real skynet:
-- on the second harbor node, finds HECHO (tests/lua/cmp_echo.lua) on the first,
-- makes `bench_calls` sequential calls to it and `bench_pushes` one-way sends followed by a
-- call that arrives after them, and logs `HARBOR BENCH calls <per s> sends <per s>`.
local skynet = require "skynet"
local harbor = require "skynet.harbor"

skynet.start(function()
	local calls = tonumber(skynet.getenv "bench_calls")
	local pushes = tonumber(skynet.getenv "bench_pushes")
	skynet.fork(function()
		local echo = harbor.queryname("HECHO")
		skynet.call(echo, "lua", "ECHO", 0)
		local started = skynet.hpc()
		for i = 1, calls do
			skynet.call(echo, "lua", "ECHO", i)
		end
		local call_ns = skynet.hpc() - started
		local before = skynet.call(echo, "lua", "NOTES")
		started = skynet.hpc()
		for i = 1, pushes do
			skynet.send(echo, "lua", "NOTE", i)
		end
		local after = skynet.call(echo, "lua", "NOTES")
		local send_ns = skynet.hpc() - started
		assert(after - before == pushes, "every note arrived")
		skynet.error(string.format("HARBOR BENCH calls %.0f sends %.0f",
			calls * 1e9 / call_ns, pushes * 1e9 / send_ns))
	end)
end)
