-- bson: the bytes real skynet f19d1605's luaclib/bson.so printed for the same calls, its
-- decoded values, in-place replacement, bson.type, and its errors.
local skynet = require "skynet"
local bson = require "bson"
local check = require "check"

local function hex(s)
	return (s:gsub(".", function(c)
		return string.format("%02x", c:byte())
	end))
end

local function bytes(name, doc, want)
	check.eq(name, hex(tostring(doc)), want)
end

skynet.start(function()
	bytes("scalars, by encode_order",
		bson.encode_order("a", 1, "b", 2 ^ 31 | 0, "c", 1.5, "d", "str", "e", true, "f", false, "g", -5, "h",
			math.mininteger, "i", 2.0),
		"52000000106100010000001262000000008000000000016300000000000000f83f02640004000000737472000865000108660000106700fbffffff1268000000000000000080016900000000000000004000")
	bytes("an array", bson.encode { arr = { 1, "two", 3.5 } },
		"2c000000046172720022000000103000010000000231000400000074776f000132000000000000000c400000")
	bytes("a nested document", bson.encode { nested = { x = "y" } },
		"1b000000036e6573746564000e0000000278000200000079000000")
	bytes("an empty table is a document", bson.encode { e = {} }, "0d000000036500050000000000")
	bytes("null, minkey, maxkey", bson.encode_order("n", bson.null, "mi", bson.minkey, "ma", bson.maxkey),
		"100000000a6e00ff6d69007f6d610000")
	bytes("binary, objectid, date, timestamp, regex, int64",
		bson.encode_order("bin", bson.binary "ab\0c", "oid", bson.objectid "0123456789abcdef01234567", "date",
			bson.date(1700000000), "ts", bson.timestamp(1700000000, 7), "re", bson.regex("^a.*", "i"), "i64",
			bson.int64(5), "re2", bson.regex "x"),
		"5e0000000562696e00040000000061620063076f6964000123456789abcdef012345670964617465000068e5cf8b010000117473000700000000f153650b7265005e612e2a006900126936340005000000000000000b7265320078000000")
	bytes("utf-8 keys and values", bson.encode_order("h\xc3\xa9", "\xe2\x82\xac\xf0\x9f\x98\x80"),
		"160000000268c3a90008000000e282acf09f98800000")
	bytes("__len makes an array (through __index)",
		bson.encode { a = setmetatable({}, { __len = function() return 2 end, __index = function(_, i) return i * 10 end }) },
		"1b000000046100130000001030000a000000103100140000000000")
	bytes("__pairs makes the fields",
		bson.encode { a = setmetatable({}, { __pairs = function(t)
			local done
			return function()
				if not done then
					done = true
					return "k", "v"
				end
			end, t, nil
		end }) },
		"160000000361000e000000026b000200000076000000")
	bytes("an encoded document inside another", bson.encode { d = bson.encode_order("z", 1) },
		"140000000364000c000000107a00010000000000")
	bytes("and its light userdata", bson.encode { d = bson.to_lightuserdata(bson.encode_order("z", 1)) },
		"140000000364000c000000107a00010000000000")
	bytes("arrays of arrays", bson.encode { a = { { 1 }, { { 2 } } } },
		"330000000461002b0000000430000c0000001030000100000000043100140000000430000c0000001030000200000000000000")
	bytes("a sequence built out of order", bson.encode { a = { [2] = 5, [1] = 4 } },
		"1b0000000461001300000010300004000000103100050000000000")
	bytes("the empty document", bson.encode {}, "0500000000")
	check.eq("#doc is its size", #bson.encode { a = 1 }, 12)

	-- in place, after makeindex
	local d = bson.encode_order("i", 1, "d", 2.5, "b", true, "l", bson.int64(7), "o",
		bson.objectid "000000000000000000000000", "t", bson.date(5), "s", "str")
	check.raises("replacing before makeindex", "call makeindex first", function() d.i = 2 end)
	check.eq("makeindex returns the document", d:makeindex(), d)
	d.i = 42
	d.d = 0.25
	d.b = false
	d.l = 99
	d.o = bson.objectid "ffffffffffffffffffffffff"
	d.t = bson.date(6)
	bytes("fields replaced in place", d,
		"4b0000001069002a000000016400000000000000d03f08620000126c006300000000000000076f00ffffffffffffffffffffffff0974007017000000000000027300040000007374720000")
	check.raises("a string field is not replaceable", "Can't replace key : s", function() d.s = "x" end)
	check.raises("an int32 field takes integers", "1.5 must be a 32bit integer", function() d.i = 1.5 end)
	check.raises("an object id field takes object ids", "Type mismatch, need bson type 7", function() d.o = bson.date(1) end)

	-- decoding gives skynet's Lua forms back
	local t = bson.decode(bson.encode_order("bin", bson.binary "ab\0c", "oid", bson.objectid "0123456789abcdef01234567",
		"date", bson.date(1700000000), "ts", bson.timestamp(1700000000, 7), "re", bson.regex("^a.*", "i"), "i64",
		bson.int64(5), "n", bson.null, "arr", { 1, 2 }, "f", 1.0, "s", "text", "nested", { x = { y = true } }))
	check.eq("binary", hex(t.bin), "00050061620063")
	check.eq("objectid", hex(t.oid), "00070123456789abcdef01234567")
	check.eq("date", hex(t.date), "000900f15365")
	check.eq("timestamp", hex(t.ts), "00110700000000f15365")
	check.eq("regex", hex(t.re), "000b5e612e2a006900")
	check.eq("int64 is an integer", t.i64, 5)
	check.eq("null", t.n, bson.null)
	check.eq("a float stays a float", t.f, 1.0)
	check.eq("a string", t.s, "text")
	check.eq("an array", #t.arr .. t.arr[1] .. t.arr[2], "212")
	check.eq("nesting", t.nested.x.y, true)
	check.eq("doc:decode()", d:decode().i, 42)

	-- bson.type
	local function typed(v)
		return table.concat(table.pack(bson.type(v)), "|", 1, select("#", bson.type(v)))
	end
	check.eq("type of a number", typed(1), "number|1")
	check.eq("type of a binary", typed(bson.binary "xy"), "binary|xy|0")
	check.eq("type of an objectid", typed(bson.objectid "0123456789abcdef01234567"), "objectid|0123456789abcdef01234567")
	check.eq("type of a timestamp", typed(bson.timestamp(3, 4)), "timestamp|3|4")
	check.eq("type of a date", typed(bson.date(9)), "date|9")
	check.eq("type of a regex", typed(bson.regex("p", "o")), "regex|p|o")
	check.eq("type of minkey", typed(bson.minkey), "minkey")
	check.eq("type of an int64", typed(bson.int64(8)), "int64|8")
	check.eq("type of null", typed(bson.null), "nil")
	check.eq("type of nil", typed(nil), "nil")
	local new = bson.objectid()
	local _, id = bson.type(new)
	check.ok("a new objectid is 24 hex digits", #id == 24 and id:match "^%x+$")
	check.ok("and the next one differs", bson.objectid() ~= new)
	local now = tonumber(id:sub(1, 8), 16)
	check.ok("and starts with the time", math.abs(now - os.time()) < 60, now)

	-- errors, skynet's texts
	check.raises("number keys", "Bson dictionary's key can't be number", bson.encode, { 1, 2 })
	check.raises("a key that is no utf-8", "Invalid utf8 string", bson.encode, { ["\xff"] = 1 })
	check.raises("an overlong utf-8 value", "Invalid utf8 string", bson.encode, { a = "\xc0\x80" })
	check.raises("a function value", "Invalid value type : function", bson.encode, { a = print })
	check.raises("an unknown subtype", "Invalid subtype 99", bson.encode, { a = "\0\x63" })
	check.raises("a short object id", "Invalid object id", bson.encode, { a = "\0\x07abc" })
	check.raises("an odd encode_order", "Invalid ordered dict", bson.encode_order, "a")
	check.raises("a hole in an array", "Bson array has a hole (nil), Use bson.null instead", bson.encode,
		{ a = setmetatable({}, { __len = function() return 2 end }) })
	local deep = {}
	for _ = 1, 200 do
		deep = { deep }
	end
	check.raises("a table nested too deep", "Too depth while encoding bson", bson.encode, { a = deep })
	local loop = {}
	loop.self = loop
	check.raises("a table that holds itself", "Too depth while encoding bson", bson.encode, loop)
	check.raises("an error in __pairs", "from pairs", bson.encode,
		{ a = setmetatable({}, { __pairs = function() error "from pairs" end }) })
	check.raises("a bad encoded document", "Invalid bson document", bson.encode, { a = io.stdout })

	check.done()
end)
