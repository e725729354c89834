-- Bounds test: makes the node log. FLOOD n size logs n lines of size bytes in one message;
-- GETENV size asks for a key of size bytes (refused and logged for an untrusted tenant);
-- NOTE text logs text.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, a, b)
		if cmd == "FLOOD" then
			local line = string.rep("x", b)
			for _ = 1, a do
				skynet.error(line)
			end
			skynet.ret(skynet.pack(true))
		elseif cmd == "GETENV" then
			local ok = pcall(skynet.getenv, string.rep("k", a) .. "\n[:00000001] forged")
			skynet.ret(skynet.pack(ok))
		elseif cmd == "NOTE" then
			skynet.error(a)
			skynet.ret(skynet.pack(true))
		end
	end)
end)
