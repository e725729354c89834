-- The gate's watchdog (skynet's examples/watchdog.lua): starts a gate, makes an agent for
-- every client the gate accepts, and ends the agent when its client goes.
--
-- Requests ("lua"): start(conf) opens the gate (conf as the gate's "open": address, port,
-- maxclient, nodelay) and returns the address and port it listens on; close(fd) kicks a
-- client and ends its agent.
local skynet = require "skynet"

local CMD = {}
local SOCKET = {}
local gate
local agents = {} -- fd -> agent

function SOCKET.open(fd, addr)
	skynet.error("watchdog: new client from " .. addr)
	local agent = skynet.newservice("agent")
	agents[fd] = agent
	local ok, forwarded = pcall(skynet.call, agent, "lua", "start",
		{ gate = gate, client = fd, watchdog = skynet.self() })
	if not (ok and forwarded) then
		-- the client left while its agent was starting
		if agents[fd] == agent then
			agents[fd] = nil
		end
		skynet.send(agent, "lua", "disconnect")
	end
end

local function close_agent(fd)
	local agent = agents[fd]
	agents[fd] = nil
	if agent then
		skynet.call(gate, "lua", "kick", fd)
		-- disconnect never answers: the agent exits
		skynet.send(agent, "lua", "disconnect")
	end
end

function SOCKET.close(fd)
	skynet.error("watchdog: socket close", fd)
	close_agent(fd)
end

function SOCKET.error(fd, msg)
	skynet.error("watchdog: socket error", fd, msg)
	close_agent(fd)
end

function SOCKET.warning(fd, size)
	-- size KiB not sent out yet on fd
	skynet.error("watchdog: socket warning", fd, size)
end

function SOCKET.data(fd, msg)
	-- only for clients the gate was told to "accept": every client here has an agent
end

function CMD.start(conf)
	return skynet.call(gate, "lua", "open", conf)
end

function CMD.close(fd)
	close_agent(fd)
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, subcmd, ...)
		if cmd == "socket" then
			local f = SOCKET[subcmd]
			if f then
				f(...)
			end
			-- the gate only sends these: nothing to answer
		else
			local f = assert(CMD[cmd], cmd)
			skynet.ret(skynet.pack(f(subcmd, ...)))
		end
	end)
	gate = skynet.newservice("gate")
end)
