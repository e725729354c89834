-- The agent test_gate makes for each client of its gate: forwards the client to itself and
-- answers each packet with one packet: "echo <text>" -> "echo <text>", "time" ->
-- skynet.time(), "" -> "empty", "quit" -> "bye" and the watchdog closes the client; anything
-- else -> "unknown <packet>".
local skynet = require "skynet"
local socket = require "skynet.socket"
local netpack = require "skynet.netpack"

local watchdog
local client_fd

local function reply(text)
	socket.write(client_fd, netpack.pack(text))
end

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	unpack = skynet.tostring,
	dispatch = function(fd, _, text)
		-- the session is the fd the packet came from, not a request to answer
		skynet.ignoreret()
		if fd ~= client_fd then
			reply("wrong fd " .. tostring(fd))
			return
		end
		if text == "" then
			reply("empty")
		elseif text == "time" then
			reply(tostring(skynet.time()))
		elseif text == "quit" then
			reply("bye")
			skynet.send(watchdog, "lua", "close", client_fd)
		elseif string.sub(text, 1, 5) == "echo " then
			reply(text)
		else
			reply("unknown " .. text)
		end
	end,
}

local CMD = {}

function CMD.start(conf)
	watchdog = conf.watchdog
	client_fd = conf.client
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
