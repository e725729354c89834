-- Bounds test: FILL target... sends each target 256 KiB messages until a send is refused
-- (at most 64), and answers how many each took.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd == "FILL" then
			local blob = string.rep("z", 256 * 1024)
			local took = {}
			for i, target in ipairs({ ... }) do
				local n = 0
				while n < 64 and pcall(skynet.send, target, "lua", "NOTHING", blob) do
					n = n + 1
				end
				took[i] = n
			end
			skynet.ret(skynet.pack(table.unpack(took)))
		end
	end)
end)
