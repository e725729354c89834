-- A reader for cmp_bench.lua's sharetable modes: QUERY takes the shared table "cmp";
-- READ n entries makes n lookups of random entries (the entry, then a nested field).
local skynet = require "skynet"
local sharetable = require "skynet.sharetable"

local t

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, n, entries)
		if cmd == "QUERY" then
			t = sharetable.query("cmp")
			skynet.ret(skynet.pack(true))
		else
			local sum = 0
			for _ = 1, n do
				local entry = t[math.random(entries)]
				sum = sum + entry.attack + entry.list[2]
			end
			skynet.ret(skynet.pack(sum))
		end
	end)
end)
