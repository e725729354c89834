-- Data files under lua_data_path: io.open/read/lines/seek/close, io.lines, io.type,
-- loadfile/dofile, and what is refused (writes, paths outside, directories, missing files).
local skynet = require "skynet"
local check = require "check"

local dir = skynet.getenv "test_data_dir"

skynet.start(function()
	local path = dir .. "/lines.txt"
	local f = assert(io.open(path))
	check.eq("io.type of an open file", io.type(f), "file")
	check.eq("read l", f:read("l"), "first line")
	check.eq("read L keeps the newline", f:read("L"), "second line\n")
	check.values("read n n n n", table.pack(f:read("n", "n", "n", "n")), table.pack(12, 31, -350.0, 7))
	check.eq("read a count", f:read(5), "\nlast")
	check.eq("read a", f:read("a"), " without newline")
	check.eq("read l at the end is nil", f:read("l"), nil)
	check.eq("read a at the end is empty", f:read("a"), "")
	check.eq("seek set", f:seek("set", 6), 6)
	check.eq("read after seek", f:read("*l"), "line")
	check.eq("seek end", f:seek("end"), 60)
	check.eq("write is refused", select(2, f:write("x")), "Bad file descriptor (a data file is read-only)")
	local lines = {}
	for line in assert(io.open(path)):lines() do
		lines[#lines + 1] = line
	end
	check.eq("file:lines reads every line", #lines, 4)
	check.eq("close", f:close(), true)
	check.eq("io.type of a closed file", io.type(f), "closed file")
	check.raises("a closed file raises", "closed file", f.read, f)
	check.eq("io.type of a string", io.type("x"), nil)

	local counted = 0
	for a, b in io.lines(path, 5, "l") do
		counted = counted + 1
		if counted == 1 then
			check.values("io.lines with formats", table.pack(a, b), table.pack("first", " line"))
		end
	end
	check.eq("io.lines ends", counted, 4)
	check.raises("io.lines of a missing file raises", "No such file", io.lines, dir .. "/missing")
	do
		local g <close> = assert(io.open(path, "rb"))
		check.eq("mode rb reads", g:read(5), "first")
	end

	-- refused
	for _, mode in ipairs { "w", "a", "r+", "w+b" } do
		local none, err = io.open(path, mode)
		check.ok("mode " .. mode .. " is refused", none == nil and err:find("Read-only", 1, true), err)
	end
	check.raises("an invalid mode raises", "invalid mode", io.open, path, "x")
	local none, err, errno = io.open(dir .. "/../test_data_files.lua")
	check.ok("a path outside lua_data_path is denied", none == nil and err:find("Permission denied", 1, true), err)
	check.eq("with EACCES", errno, 13)
	none, err = io.open(dir .. "/sub")
	check.ok("a directory is refused", none == nil and err:find("Not a regular file", 1, true), err)
	none, err, errno = io.open(dir .. "/missing")
	check.ok("a missing file", none == nil and err:find("No such file", 1, true), err)
	check.eq("with ENOENT", errno, 2)
	check.eq("a file in a subdirectory", assert(io.open(dir .. "/sub/nested.txt")):read("a"),
		'nested = "a file in a subdirectory"\n')

	-- loadfile / dofile
	local items = assert(loadfile(dir .. "/items.lua"))()
	check.eq("loadfile skips a # first line and runs", items.sword.attack, 10)
	check.eq("loadfile's chunk sees the globals", items.source, "unset")
	local with_env = assert(loadfile(dir .. "/items.lua", "t", { who = "env" }))()
	check.eq("loadfile with an env", with_env.source, "env")
	check.eq("dofile", dofile(dir .. "/items.lua").shield.defence, 5)
	local broken, why = loadfile(dir .. "/broken.lua")
	check.ok("loadfile of a syntax error", broken == nil and why:find("broken.lua", 1, true), why)
	local missing, missing_why = loadfile(dir .. "/missing.lua")
	check.ok("loadfile of a missing file", missing == nil and missing_why:find("cannot open", 1, true), missing_why)
	check.raises("dofile of a missing file raises", "No such file", dofile, dir .. "/missing.lua")
	check.raises("dofile outside raises", "Permission denied", dofile, dir .. "/../test_call.lua")
	check.done()
end)
