-- Bounds test: GET key answers skynet.getenv(key); SET key value answers whether
-- skynet.setenv raised nothing.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, key, value)
		if cmd == "GET" then
			skynet.ret(skynet.pack(skynet.getenv(key)))
		elseif cmd == "SET" then
			skynet.ret(skynet.pack((pcall(skynet.setenv, key, value))))
		end
	end)
end)
