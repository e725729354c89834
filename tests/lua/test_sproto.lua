-- sproto, sprotoparser, sprotoloader and sproto RPC, against bytes printed by real skynet
-- f19d1605 (its sprotoparser with lpeg, sproto.core encode and pack).
local skynet = require "skynet"
local sproto = require "sproto"
local parser = require "sprotoparser"
local core = require "sproto.core"
local loader = require "sprotoloader"
local check = require "check"

local function hex(s)
	return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local schema = [[
.Person {
	name 0 : string
	age 1 : integer
	marital 2 : boolean
	children 3 : *Person
}

.Data {
	numbers 0 : *integer
	bools 1 : *boolean
	number 2 : integer
	bignumber 3 : integer
	double 4 : double
	doubles 5 : *double
	fpn 6 : integer(2)
}

.AddressBook {
	person 0 : *Person(name)
	others 1 : *Person
	.Pair { key 0 : string
		value 1 : integer }
	dict 3 : *Pair()
	blob 9 : binary
}

.package {
	type 0 : integer
	session 1 : integer
	ud 2 : string
}

foobar 1 {
	request Data
	response {
		ok 0 : boolean
		fpns 1 : *integer(3)
	}
}
ping 2 {}
bye 3 { response nil }
query 4 { request AddressBook }
]]

local function codec(sp)
	local function enc(t, v, want, want_packed)
		local e = sp:encode(t, v)
		check.eq("encode " .. t .. " " .. want, hex(e), want)
		check.eq("pack " .. t .. " " .. want, hex(core.pack(e)), want_packed)
		return e
	end
	enc("Person", { name = "Alice", age = 13, marital = false }, "030000001c00020005000000416c696365", "51031c02f105416c69630165")
	local bob = enc("Person", { name = "Bob", age = 40, children = { { name = "Alice", age = 13 }, { name = "Carol", age = 5 } } },
		"0400000052000100000003000000426f62260000000f000000020000001c0005000000416c6963650f000000020000000c00050000004361726f6c",
		"51045201c403426f2362260fa2021c05f8416c696365110f02c50c05436107726f6c")
	local back, size = sp:decode("Person", bob)
	check.eq("decode returns the bytes it took", size, #bob)
	check.eq("decoded name", back.name, "Bob")
	check.eq("decoded children", back.children[2].name .. back.children[2].age, "Carol5")
	check.eq("a field not sent is nil", back.marital, nil)
	enc("Data", { numbers = { 1, 2, 3, 4, 5 } }, "0100000015000000040100000002000000030000000400000005000000", "110115230401022203040205")
	enc("Data", { numbers = { 1, -2, 1 << 40, 3 } }, "0100000021000000080100000000000000feffffffffffffff00000000000100000300000000000000",
		"110121030801fefeffffffffffff41ff01020300")
	enc("Data", { bools = { false, true, false } }, "02000100000003000000000100", "450201030801")
	enc("Data", { number = 100000, bignumber = -10000000000 }, "030003000000000004000000a086010008000000001cf4abfdffffff",
		"0503037104a08601e1081cf4ab0ffdffffff")
	enc("Data", { double = 0.01171875, doubles = { 0.01171875, 23, 4 } },
		"030007000000000008000000000000000000883f1900000008000000000000883f00000000000037400000000000001040",
		"05030701081c883f19810888813f378140100140")
	enc("Data", { fpn = 1.82 }, "02000b006e01", "35020b6e01")
	enc("Data", { numbers = {}, bools = {}, doubles = {}, number = -1, bignumber = 0x7ffe },
		"0600000000000000feff01000000000000000000000004000000ffffffff00000000", "010607feff0140043cffffffff00")
	local book = enc("AddressBook", { person = { Alice = { name = "Alice", age = 1 } }, dict = { x = 1 }, blob = "\0\1\2" },
		"050000000300000009000000130000000f00000002000000040005000000416c6963650f0000000b000000020000000400010000007803000000000102",
		"110503110913110f02c50405416c8f6963650f0b88020462017803180102")
	local b = sp:decode("AddressBook", book)
	check.eq("a keyed array decodes by its key", b.person.Alice.age, 1)
	check.eq("a two-field map decodes to key = value", b.dict.x, 1)
	check.eq("binary", b.blob, "\0\1\2")
	local d = sp:decode("Data", sp:encode("Data", { fpn = 1.82, double = 0.5, numbers = {} }))
	check.eq("fixed point comes back as a number", d.fpn, 1.82)
	check.eq("double", d.double, 0.5)
	check.eq("an empty array comes back empty", #d.numbers, 0)
	check.eq("pencode/pdecode", sp:pdecode("Person", sp:pencode("Person", { name = "P" })).name, "P")

	-- defaults
	local def = sp:default "Data"
	check.eq("default integer", def.number, 0)
	check.eq("default fixed point", math.type(def.fpn), "float")
	check.eq("default array", def.numbers.__array, 0)
	check.eq("default struct array names its type", sp:default("AddressBook").person.__array, "Person")
	check.eq("default request", sp:default("foobar", "REQUEST").bools.__array, false)
	check.eq("default response", sp:default("foobar", "RESPONSE").ok, false)
	check.eq("exist_type", sp:exist_type "Person" and not sp:exist_type "Nobody", true)
	check.eq("exist_proto", sp:exist_proto "ping" and not sp:exist_proto "pong", true)

	-- errors
	check.raises("a string where an integer goes", "Person.age[0] is not an integer (Is a string)", sp.encode, sp, "Person", { age = "x" })
	check.raises("a number where a string goes", "Person.name[0] is not a string (Is a number)", sp.encode, sp, "Person", { name = 3 })
	check.raises("an array that is not a table", "Person.children(1) should be a table", sp.encode, sp, "Person", { children = 3 })
	local loop = { name = "loop" }
	loop.children = { loop }
	check.raises("a cycle", "The table is too deep", sp.encode, sp, "Person", loop)
	check.raises("garbage does not decode", "decode error", sp.decode, sp, "Person", "\5\0\1")
	check.raises("a bad packed stream", "Invalid unpack stream", core.unpack, "\255\3\1")
	check.eq("a bad bundle makes no schema", core.newproto "garbage", nil)
	check.raises("an unknown type", "type not found", sp.encode, sp, "Nobody", {})
	check.raises("a schema error", "Undefined type Nobody in type A", parser.parse, ".A { a 0 : Nobody }")
	check.raises("a syntax error", "syntax error at [schema.sp] line (2)", parser.parse, ".A {\n a : }", "schema.sp")
	local big = {}
	for i = 1, 100000 do
		big[i] = i * 1000003
	end
	local e = sp:encode("Data", { numbers = big })
	check.eq("a big array grows the encode buffer", #e, 2 + 2 + 4 + 1 + 8 * 100000)
	check.eq("and decodes", sp:decode("Data", e).numbers[100000], 100000 * 1000003)
end

local function rpc(sp)
	local server = sp:host "package"
	local client = sp:host "package"
	local request = client:attach(sp)
	local msg = request("foobar", { number = 7 }, 1, "ud1")
	local kind, name, args, respond, ud = server:dispatch(msg)
	check.eq("a request", kind .. name .. args.number .. ud, "REQUESTfoobar7ud1")
	local reply = respond({ ok = true, fpns = { 0.5 } }, "ud2")
	local rkind, session, result, rud = client:dispatch(reply)
	check.eq("its response", rkind .. session .. tostring(result.ok) .. result.fpns[1] .. rud, "RESPONSE1true0.5ud2")
	local k2, n2, a2, r2 = server:dispatch(request("ping"))
	check.eq("a request without a session has no responder", k2 .. n2 .. tostring(a2) .. tostring(r2), "REQUESTpingnilnil")
	local _, _, _, confirm = server:dispatch(request("bye", nil, 2))
	local ck, cs, cr = client:dispatch(confirm())
	check.eq("a response nil", ck .. cs .. tostring(cr), "RESPONSE2nil")
	check.raises("an unknown session", "Unknown session", client.dispatch, client, reply)
	local req, tag = sp:request_encode("foobar", { number = 3 })
	check.eq("request_encode gives the tag", tag, 1)
	check.eq("request_decode", sp:request_decode("foobar", req).number, 3)
	check.eq("response_encode of response nil", sp:response_encode("bye", nil), "")
end

skynet.start(function()
	local bin = parser.parse(schema)
	check.eq("the bundle is skynet's", (require "md5").sumhexa(bin), "4fa4a865347b6776ca7585b87c1f4149")
	local sp = sproto.new(bin)
	check.ok("sproto.parse", sproto.parse(schema):exist_type "AddressBook.Pair")
	codec(sp)
	rpc(sp)
	-- slots shared between services
	loader.save(bin, 1)
	local other = skynet.newservice("sproto_peer")
	check.eq("another service loads slot 1 and encodes as this one", skynet.call(other, "lua", "encode"),
		hex(sp:encode("Person", { name = "Alice", age = 13, marital = false })))
	check.raises("an empty slot", "nil sproto at index 9", loader.load, 9)
	check.raises("a slot out of range", "Invalid global slot index 16", loader.save, bin, 16)
	check.done()
end)
