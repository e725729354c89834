-- skynet.sharetable: tables made from a table, a string and a data file, read through
-- proxies (index, nested tables, #, ipairs, pairs, read-only), many readers reading while
-- the table is updated, update re-pointing what a reader holds, a reader's memory growing
-- with what it reads, not with the table.
local skynet = require "skynet"
local sharetable = require "skynet.sharetable"
local memory = require "skynet.memory"
local check = require "check"

skynet.start(function()
	sharetable.loadtable("items", {
		sword = { attack = 10, tags = { "sharp", "long" } },
		shield = { defence = 5 },
		"first", "second",
		version = 1,
	})
	local t = sharetable.query("items")
	check.eq("a value", t.version, 1)
	check.eq("a nested value", t.sword.attack, 10)
	check.eq("the same sub-table each time", t.sword, t.sword)
	check.eq("a nested array", t.sword.tags[2], "long")
	check.eq("# of the array part", #t, 2)
	check.eq("# of a nested array", #t.sword.tags, 2)
	local listed = {}
	for i, v in ipairs(t) do
		listed[i] = v
	end
	check.eq("ipairs", table.concat(listed, ","), "first,second")
	local keys = 0
	for k, v in pairs(t) do
		keys = keys + 1
	end
	check.eq("pairs visits every key", keys, 5)
	check.eq("a missing key", t.nothing, nil)
	check.raises("a key not read yet cannot be assigned", "read-only", function()
		t.added = 2
	end)
	check.eq("query of an unknown name", sharetable.query("nothing"), nil)

	sharetable.loadstring("numbers", "return { ... }", 1, 2, 3)
	check.eq("loadstring with arguments", #sharetable.query("numbers"), 3)
	sharetable.loadfile(skynet.getenv("test_data_dir") .. "/items.lua")
	check.eq("loadfile through lua_data_path", sharetable.query(skynet.getenv("test_data_dir") .. "/items.lua").sword.attack, 10)
	local all = sharetable.queryall({ "items", "numbers" })
	check.eq("queryall of a list", all.numbers[3], 3)
	check.eq("queryall default has every name", sharetable.queryall().items.version, 1)

	-- readers read while the table is updated: each ends up seeing the new version
	local readers = {}
	for i = 1, 50 do
		readers[i] = skynet.newservice("sharetable_reader")
		skynet.call(readers[i], "lua", "QUERY", "items")
	end
	local sword = t.sword
	for i = 1, 50 do
		skynet.send(readers[i], "lua", "SPIN")
	end
	sharetable.loadtable("items", { sword = { attack = 99 }, version = 2 })
	local all_new = true
	for i = 1, 50 do
		local version, attack = skynet.call(readers[i], "lua", "UPDATE", "items")
		all_new = all_new and version == 2 and attack == 99
	end
	check.ok("every reader sees the new version after update", all_new)
	check.eq("before update this reader still sees the old one", t.version, 1)
	sharetable.update("items")
	check.eq("update re-points the root this service holds", t.version, 2)
	check.eq("and a sub-table it kept", sword.attack, 99)
	check.eq("a key gone in the new version", t.shield, nil)

	-- a reader's memory grows with what it reads, not with the table
	local big = {}
	for i = 1, 40000 do
		big[i] = { id = i, name = string.rep("x", 64) .. i }
	end
	sharetable.loadtable("big", big)
	local reader = skynet.newservice("sharetable_reader")
	local before = skynet.call(reader, "lua", "MEMORY")
	local name = skynet.call(reader, "lua", "READ", "big", 12345)
	local after = skynet.call(reader, "lua", "MEMORY")
	check.eq("a reader reads an entry of a big table", name, string.rep("x", 64) .. 12345)
	check.ok("its memory grew far less than the table", after - before < 1024 * 1024, after - before)
	check.ok("this service did build the table", memory.current() > 4 * 1024 * 1024, memory.current())
	check.done()
end)
