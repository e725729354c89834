-- The example's first service (skynet's `start`). It launches a key/value service and a
-- ping-pong pair in Lua and the Rust/C demo (wasm modules), then shows call, send,
-- timeout, uniqueservice and datacenter. The node keeps running until Ctrl-C.
local skynet = require "skynet"
local datacenter = require "skynet.datacenter"

skynet.start(function()
	-- A Rust service that launches a Rust `pong` and a C `echo_c` and calls them.
	skynet.call(".launcher", "lua", "LAUNCH", "main")

	-- uniqueservice: one simpledb per node, however many ask for it.
	local db = skynet.uniqueservice("simpledb")
	skynet.call(db, "lua", "SET", "greeting", "hello from Lua")
	skynet.error("main: simpledb GET greeting ->", skynet.call(db, "lua", "GET", "greeting"))
	skynet.error("main: uniqueservice again gives the same service:",
		skynet.uniqueservice("simpledb") == db)

	-- A ping-pong pair: `ping` sends to `pong` with skynet.send, `pong` answers with send.
	local pong = skynet.newservice("pingpong", "pong")
	skynet.newservice("pingpong", "ping", pong, 3)

	-- datacenter: a node-wide tree of values.
	datacenter.set("example", "started_at", skynet.now())
	skynet.error("main: datacenter example.started_at =", datacenter.get("example", "started_at"))

	-- timeout: a heartbeat every 10 seconds, forever.
	local function heartbeat()
		local entries = skynet.call(db, "lua", "COUNT")
		skynet.error(string.format("main: heartbeat, up %d s, simpledb holds %d key(s); Ctrl-C stops the node",
			skynet.now() // 100, entries))
		skynet.timeout(1000, heartbeat)
	end
	skynet.timeout(100, heartbeat)
end)
