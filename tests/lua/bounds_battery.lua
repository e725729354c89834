-- Bounds test, a node of its own (tests/blackbox/cli.rs): one host-memory attack of an
-- untrusted tenant's Lua service, run over and over. `bounds_battery MODE SECONDS` logs
-- "BATTERY READY MODE", waits 2 s (the test reads the node's RSS then), attacks for SECONDS
-- and logs "BATTERY DONE MODE TRIED WORKED": attempts, and those that raised no error. Modes:
--   log     lines of 60 KiB, as fast as they go      getenv  GETENV of a 1 MiB key (refused)
--   names   a new name each time (capped)             timers  a 1,000 s timeout each time
--   mail    256 KiB to a slow sink of its own         launch  a launch with 1 MiB arguments
--   owe     calls its holder never answers (4,000)    grow    Lua memory up to its limit
--   calm    (trusted) a call to an echo each 10 ms
-- and, launched by the others: sink (each message takes 20 ms), hold (answers nothing),
-- echo (answers at once).
local skynet = require "skynet"
require "skynet.manager"

local mode, seconds = ...
seconds = tonumber(seconds) or 5

local function attack(make)
	local step = make()
	local tried, worked = 0, 0
	local deadline = skynet.now() + seconds * 100
	while skynet.now() < deadline do
		-- Chunks of 50, each in a message of its own: no message reaches the CPU limit.
		for _ = 1, 50 do
			tried = tried + 1
			if pcall(step) then
				worked = worked + 1
			end
		end
		skynet.sleep(0)
	end
	return tried, worked
end

local attacks = {}

function attacks.log()
	local line = string.rep("x", 60 * 1024)
	return function()
		skynet.error(line)
	end
end

function attacks.getenv()
	local key = string.rep("k", 1 << 20)
	return function()
		assert(skynet.getenv(key)) -- nil when refused
	end
end

function attacks.names()
	local n = 0
	return function()
		n = n + 1
		local name = ".n" .. n
		skynet.register(name) -- says nothing when refused, as in skynet
		assert(skynet.localname(name) == skynet.self())
	end
end

function attacks.timers()
	return function()
		skynet.timeout(100000, function() end)
	end
end

function attacks.mail()
	local sink = skynet.newservice("bounds_battery", "sink")
	local blob = string.rep("z", 256 * 1024)
	return function()
		skynet.send(sink, "lua", blob)
	end
end

function attacks.launch()
	local args = string.rep("a", 1 << 20)
	return function()
		skynet.newservice("bounds_battery", args)
	end
end

function attacks.owe()
	local holder = skynet.newservice("bounds_battery", "hold")
	local waiting = 0
	local function wait()
		waiting = waiting + 1
		pcall(skynet.call, holder, "lua", "HOLD")
		waiting = waiting - 1
	end
	return function()
		-- Each waiting call is a coroutine of the attacker's own memory: some thousands.
		if waiting < 4000 then
			skynet.fork(wait)
		end
	end
end

function attacks.grow()
	local kept = {}
	return function()
		local ok, err = pcall(function()
			kept[#kept + 1] = string.rep("g", 64 * 1024) .. #kept
		end)
		if not ok then
			-- At the memory limit: let go, and fill it again.
			kept = {}
			error(err)
		end
	end
end

function attacks.calm()
	local echo = skynet.newservice("bounds_battery", "echo")
	return function()
		if skynet.call(echo, "lua", "PING") == "PONG" then
			skynet.sleep(1)
		end
	end
end

local serve = {
	sink = function()
		local start = skynet.now()
		while skynet.now() - start < 2 do
		end
	end,
	hold = function()
		skynet.ignoreret()
	end,
	echo = function()
		skynet.ret(skynet.pack("PONG"))
	end,
}

skynet.start(function()
	if serve[mode] then
		skynet.dispatch("lua", serve[mode])
		return
	end
	local make = attacks[mode]
	if not make then
		return
	end
	skynet.fork(function()
		skynet.error("BATTERY READY " .. mode)
		skynet.sleep(200)
		skynet.error(string.format("BATTERY DONE %s %d %d", mode, attack(make)))
	end)
end)
