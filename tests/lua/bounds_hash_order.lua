-- Bounds test: ORDER answers the order `pairs` visits 40 string keys in, which follows
-- their hashes: two services with the same string-hash seed answer the same.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "ORDER" then
			local t = {}
			for i = 1, 40 do
				t["key" .. i] = true
			end
			local order = {}
			for k in pairs(t) do
				order[#order + 1] = k
			end
			skynet.ret(skynet.pack(table.concat(order, " ")))
		end
	end)
end)
