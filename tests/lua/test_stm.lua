-- skynet.stm: a writer's updates reach a reader in another service without a message per
-- change; a reader sees each version once; the bytes go when the writer lets go (or ends).
local skynet = require "skynet"
local stm = require "skynet.stm"
local check = require "check"

skynet.start(function()
	local reader = skynet.newservice("stm_reader")
	local obj = stm.new(skynet.pack(1, 2, 3))
	check.values("the first read gets the first value", table.pack(skynet.call(reader, "lua", "TAKE", stm.copy(obj))),
		table.pack(true, 1, 2, 3))
	check.values("nothing new reads false", table.pack(skynet.call(reader, "lua", "READ")), table.pack(false))
	obj(skynet.pack("two"))
	obj(skynet.pack("three"))
	check.values("the latest version is read", table.pack(skynet.call(reader, "lua", "READ")), table.pack(true, "three"))
	check.values("once", table.pack(skynet.call(reader, "lua", "READ")), table.pack(false))
	obj("raw string")
	check.values("a string value reaches the reader's function as bytes", table.pack(skynet.call(reader, "lua", "RAW")),
		table.pack(true, "raw string", 10))

	-- a second reader of the same object, and the writer letting go
	obj(skynet.pack("four"))
	local second = skynet.newservice("stm_reader")
	check.values("another reader gets the current value", table.pack(skynet.call(second, "lua", "TAKE", stm.copy(obj))),
		table.pack(true, "four"))
	getmetatable(obj).__gc(obj)
	check.values("after the writer let go, readers read false", table.pack(skynet.call(reader, "lua", "READ")), table.pack(false))
	check.raises("a closed writer gives no copy", "closed", stm.copy, obj)

	-- a writer that ends: its bytes go with it
	local writer = skynet.newservice("stm_reader")
	local ref = skynet.call(writer, "lua", "WRITE", "from a service")
	local third = skynet.newservice("stm_reader")
	check.values("a copy from another writer", table.pack(skynet.call(third, "lua", "TAKE", ref)), table.pack(true, "from a service"))
	skynet.kill(writer)
	check.values("its reader reads false once it ended", table.pack(skynet.call(third, "lua", "READ")), table.pack(false))
	check.done()
end)
