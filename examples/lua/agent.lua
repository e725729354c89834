-- One client's agent, made by the watchdog (skynet's examples/agent.lua, with a tiny text
-- protocol instead of sproto). Every packet from the client is a request, answered with one
-- packet:
--
--   "echo <text>"  ->  "echo <text>"
--   "time"         ->  skynet.time(), as text
--   "quit"         ->  "bye", then the watchdog closes the connection
--
-- The gate sends the client's packets here as "client" messages whose session is the fd;
-- answers go straight to the socket (any service may write to a socket it knows).
local skynet = require "skynet"
local socket = require "skynet.socket"
local netpack = require "skynet.netpack"

local watchdog
local client_fd

local function reply(text)
	socket.write(client_fd, netpack.pack(text))
end

local REQUEST = {}

function REQUEST.echo(text)
	reply("echo " .. text)
end

function REQUEST.time()
	reply(tostring(skynet.time()))
end

function REQUEST.quit()
	reply("bye")
	-- the watchdog kicks the client (the gate closes once "bye" is sent) and then ends us
	skynet.send(watchdog, "lua", "close", client_fd)
end

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	unpack = skynet.tostring,
	dispatch = function(fd, _, text)
		-- the session is the client's fd, not a request to answer
		skynet.ignoreret()
		assert(fd == client_fd, "a packet for another client")
		local cmd, arg = string.match(text, "^(%S*) ?(.*)$")
		local f = REQUEST[cmd]
		if f then
			f(arg)
		else
			reply("error unknown request: " .. text)
		end
	end,
}

local CMD = {}

-- conf: gate, client (the fd), watchdog
function CMD.start(conf)
	watchdog = conf.watchdog
	client_fd = conf.client
	-- from now on the gate reads the client and sends its packets here
	return skynet.call(conf.gate, "lua", "forward", client_fd)
end

function CMD.disconnect()
	skynet.exit()
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = assert(CMD[cmd], cmd)
		skynet.ret(skynet.pack(f(...)))
	end)
end)
