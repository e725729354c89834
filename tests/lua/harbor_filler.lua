-- Harbor test service: FILL n target... sends each target 256 KiB messages until a send is
-- refused (skynet.send answers nil for an address it cannot reach) or n were taken, and
-- answers how many each took.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, n, ...)
		assert(cmd == "FILL", cmd)
		local blob = string.rep("z", 256 * 1024)
		local took = {}
		for i, target in ipairs({ ... }) do
			local count = 0
			while count < n do
				local ok, session = pcall(skynet.send, target, "lua", "NOTHING", blob)
				if not ok or session == nil then
					break
				end
				count = count + 1
			end
			took[i] = count
		end
		skynet.ret(skynet.pack(table.unpack(took)))
	end)
end)
