-- Bounds test: ORDER answers the order `pairs` visits 40 string keys in, which follows
-- their hashes: two services with the same string-hash seed answer the same. LOOKUP finds
-- every string key of every table reachable from the registry again through a string
-- made now (after any reseed): it answers how many short and long keys it checked and
-- the first one not found (or nil).
local skynet = require "skynet"

local function lookup_all()
	local seen, short, long, lost = {}, 0, 0, nil
	local function walk(t)
		if seen[t] then
			return
		end
		seen[t] = true
		for k, v in next, t do
			if type(k) == "string" then
				local copy = (k .. "\0"):sub(1, -2)
				if rawget(t, copy) ~= v and v == v then
					lost = lost or k
				end
				if #k > 40 then
					long = long + 1
				else
					short = short + 1
				end
			end
			if type(k) == "table" then
				walk(k)
			end
			if type(v) == "table" then
				walk(v)
			end
		end
		local mt = getmetatable(t)
		if type(mt) == "table" then
			walk(mt)
		end
	end
	walk(debug.getregistry())
	-- A long key made after the reseed, found through another string of the same bytes.
	local mine = { [string.rep("k", 64)] = true }
	if not mine[string.rep("k", 63) .. "k"] then
		lost = lost or "a long key made now"
	end
	return short, long, lost
end

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
		elseif cmd == "LOOKUP" then
			skynet.ret(skynet.pack(lookup_all()))
		end
	end)
end)
