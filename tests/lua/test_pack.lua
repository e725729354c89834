-- skynet.pack in Lua: skynet's golden bytes, round trips, limits and errors.
local skynet = require "skynet"
local check = require "check"

local function hex(s)
	return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

skynet.start(function()
	local golden = {
		{ "strings", hex(skynet.packstring("GET", "a")), "1c4745540c61" },
		{ "mixed", hex(skynet.packstring(1, "a", nil, true)), "0a010c610009" },
		{ "array", hex(skynet.packstring({ 1, 2, 3 })), "1e0a010a020a0300" },
		{ "hash", hex(skynet.packstring({ x = 1 })), "060c780a0100" },
		{ "array and hash", hex(skynet.packstring({ 10, [3] = 30 })), "0e0a0a0a030a1e00" },
		{ "negative", hex(skynet.packstring(-1)), "22ffffffff" },
		{ "qword", hex(skynet.packstring(2147483648)), "320000008000000000" },
		{ "real", hex(skynet.packstring(1.0)), "42000000000000f03f" },
		{ "long string", hex(skynet.packstring(string.rep("x", 32))):sub(1, 6), "152000" },
		{ "empty table with a metatable", hex(skynet.packstring(setmetatable({}, { __index = print }))), "0600" },
	}
	for _, case in ipairs(golden) do
		check.eq("golden bytes: " .. case[1], case[2], case[3])
	end
	local big = {}
	for i = 1, 300 do big[i] = i end
	check.eq("an array of 300 has an extended header", hex(skynet.packstring(big)):sub(1, 8), "fe122c01")

	local values = table.pack(0, -0.0, 1 / 0, math.maxinteger, math.mininteger, "", "s", false,
		{ nested = { deeper = { 1, 2, { 3 } } } }, nil, 7)
	local back = table.pack(skynet.unpack(skynet.packstring(table.unpack(values, 1, values.n))))
	check.eq("round trip keeps the count", back.n, values.n)
	check.eq("round trip keeps integers", back[4], math.maxinteger)
	check.eq("round trip keeps math.mininteger", back[5], math.mininteger)
	check.eq("round trip keeps nested tables", back[9].nested.deeper[3][1], 3)
	local msg, sz = skynet.pack("x", 1)
	check.eq("pack returns a buffer and size", sz, 4)
	check.eq("tostring copies a buffer", skynet.tostring(msg, sz), skynet.packstring("x", 1))
	check.values("unpack reads a buffer", table.pack(skynet.unpack(msg, sz)), table.pack("x", 1))
	skynet.trash(msg, sz)
	check.values("unpack of nothing is nothing", table.pack(skynet.unpack("")), table.pack())

	local t = {}
	local inner = t
	for _ = 1, 32 do
		inner[1] = {}
		inner = inner[1]
	end
	check.ok("32 nested tables pack", pcall(skynet.packstring, t))
	inner[1] = {}
	check.raises("33 nested tables do not", "serialize can't pack too depth table", skynet.packstring, t)
	check.raises("functions cannot be packed", "Unsupport type function to serialize", skynet.packstring, print)
	check.raises("threads cannot be packed", "Unsupport type thread to serialize",
		skynet.packstring, coroutine.create(print))
	check.raises("bad bytes raise", "Invalid serialize stream", skynet.unpack, "\7")
	check.raises("truncated bytes raise", "Invalid serialize stream", skynet.unpack, "\x15\x20\x00ab")
	local pairs_table = setmetatable({}, { __pairs = function() return next, { a = 1 }, nil end })
	check.eq("__pairs is used", skynet.unpack(skynet.packstring(pairs_table)).a, 1)

	check.done()
end)
