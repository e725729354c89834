-- skynet.sharedata and skynet.datasheet: objects that follow updates (the object and a
-- sub-table a reader kept show the new version, in this service and in others), Lua
-- source and data files as values, deepcopy, delete, errors.
local skynet = require "skynet"
local sharedata = require "skynet.sharedata"
local builder = require "skynet.datasheet.builder"
local datasheet = require "skynet.datasheet"
local check = require "check"

-- Waits (bounded) until `f()` is true: an update reaches readers asynchronously.
local function eventually(f)
	for _ = 1, 200 do
		if f() then
			return true
		end
		skynet.sleep(1)
	end
	return false
end

skynet.start(function()
	sharedata.new("conf", { a = 1, b = { c = 2, list = { 1, 2, 3 } } })
	local conf = sharedata.query("conf")
	check.eq("a value", conf.a, 1)
	check.eq("a nested value", conf.b.c, 2)
	check.eq("the same object each query", sharedata.query("conf"), conf)
	local b = conf.b
	check.eq("# of a nested array", #b.list, 3)
	check.raises("new of an existing name fails", "call failed", sharedata.new, "conf", {})
	check.raises("a key not read yet cannot be assigned", "read-only", function()
		conf.z = 1
	end)

	-- another service reads it and follows updates too
	local reader = skynet.newservice("sharedata_reader")
	check.eq("another service reads it", skynet.call(reader, "lua", "GET", "conf"), 2)

	sharedata.update("conf", { a = 10, b = { c = 20 } })
	check.ok("the object follows the update", eventually(function() return conf.a == 10 end))
	check.eq("and a sub-table it kept", b.c, 20)
	check.eq("a key gone in the new version", b.list, nil)
	check.ok("the other service follows it", eventually(function()
		return skynet.call(reader, "lua", "GET", "conf") == 20
	end))

	-- values from Lua source: its return value, or the globals it set
	sharedata.new("src", "return { x = ... }", 7)
	check.eq("source returning a table", sharedata.query("src").x, 7)
	sharedata.new("globals", "x = 1 y = 'two'")
	check.eq("source setting globals", sharedata.query("globals").y, "two")
	sharedata.new("file", "@" .. skynet.getenv("test_data_dir") .. "/items.lua")
	check.eq("a data file", sharedata.query("file").sword.attack, 10)
	sharedata.new("empty")
	check.eq("nil makes an empty table", next(sharedata.deepcopy("empty")), nil)

	local copy = sharedata.deepcopy("conf")
	check.eq("deepcopy is a plain table", getmetatable(copy), nil)
	check.eq("deepcopy has nested values", copy.b.c, 20)
	check.eq("deepcopy of a key path", sharedata.deepcopy("conf", "b", "c"), 20)

	sharedata.delete("src")
	check.raises("query of a deleted name fails", "call failed", sharedata.query, "src")
	check.raises("delete of an unknown name fails", "call failed", sharedata.delete, "nothing")

	-- datasheet
	builder.new("sheet", { a = 1, b = 2, c = { 3 } })
	local sheet = datasheet.query("sheet")
	local c = sheet.c
	check.eq("datasheet value", sheet.b, 2)
	builder.update("sheet", { b = 4, c = { 5 } })
	check.ok("a datasheet follows the update", eventually(function() return sheet.b == 4 end))
	check.eq("and a sub-table it kept", c[1], 5)
	check.eq("a key gone", sheet.a, nil)
	builder.update("sheet", builder.compile({ a = 6, c = 7, d = 8 }))
	check.ok("a compiled table works too", eventually(function() return sheet.d == 8 end))
	check.eq("a sub-table become a value", sheet.c, 7)
	check.raises("query of an unknown datasheet fails", "call failed", datasheet.query, "nothing")
	check.raises("new twice from one builder fails", "exists", builder.new, "sheet", {})
	check.done()
end)
