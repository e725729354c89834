-- Takes over a socket another service accepted and abandoned (skynet's gate/agent pattern):
-- TAKE id starts it here, answers one line with "taken: <line>" and closes it.
local skynet = require "skynet"
local socket = require "skynet.socket"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, id)
		assert(cmd == "TAKE", cmd)
		assert(socket.start(id))
		local line = socket.readline(id)
		socket.write(id, "taken: " .. tostring(line) .. "\n")
		socket.close(id)
		skynet.retpack(line)
	end)
end)
