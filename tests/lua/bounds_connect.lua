-- Bounds test: OPEN host port answers whether socket.open connected, and why not.
local skynet = require "skynet"
local socket = require "skynet.socket"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, host, port)
		if cmd == "OPEN" then
			local ok, id, err = pcall(socket.open, host, port)
			if ok and id then
				socket.close(id)
			end
			skynet.ret(skynet.pack(ok and id ~= nil, tostring(err or id)))
		end
	end)
end)
