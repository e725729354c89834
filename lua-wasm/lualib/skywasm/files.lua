-- Data files for Lua services. A wasm sandbox opens no host file itself, so `io.open`,
-- `io.lines`, `io.type`, `loadfile` and `dofile` are replaced by these, which ask the host
-- for the whole file (`skynet.core.read_data`): only for reading, only under the
-- directories of the config's `lua_data_path` (an untrusted tenant's own, when its entry
-- grants one), at most `lua_data_max` bytes. The file objects are Lua's (read, lines, seek,
-- close, setvbuf, flush; write fails) over the bytes read at open.
local core = require "skynet.core"

local error_codes = {
	[-8] = { "No such file or directory", 2 },
	[-3] = { "Permission denied (not under lua_data_path; Lua services read data files only there)", 13 },
	[-7] = { "Not a regular file", 21 },
	[-4] = { "File too large (over lua_data_max, or more than the service may hold)", 27 },
}

-- The file's bytes, or nil, Lua's "path: reason" message and an errno.
local function read_whole(path)
	local bytes, code = core.read_data(path)
	if bytes then
		return bytes
	end
	local reason = error_codes[code] or { "host error " .. tostring(code), 5 }
	return nil, path .. ": " .. reason[1], reason[2]
end

local File = {}
File.__index = File
File.__name = "FILE*"

local function open_file(bytes)
	return setmetatable({ bytes = bytes, pos = 1, closed = false }, File)
end

local function check_open(f)
	if getmetatable(f) ~= File then
		error("bad argument #1 (FILE* expected)", 3)
	end
	if f.closed then
		error("attempt to use a closed file", 3)
	end
end

function File.__tostring(f)
	if f.closed then
		return "file (closed)"
	end
	return string.format("file (%p)", f)
end

function File.__close(f)
	f.closed = true
end

File.__gc = File.__close

local NUMERALS = {
	"^[%+%-]?0[xX][%x%.]*[pP][%+%-]?%d+",
	"^[%+%-]?0[xX][%x%.]*",
	"^[%+%-]?[%d%.]+[eE][%+%-]?%d+",
	"^[%+%-]?[%d%.]+",
}

local function read_number(f)
	local bytes = f.bytes
	local start = string.find(bytes, "[^%s]", f.pos) or #bytes + 1
	for _, pattern in ipairs(NUMERALS) do
		local _, last = string.find(bytes, pattern, start)
		if last then
			f.pos = last + 1
			return tonumber(string.sub(bytes, start, last))
		end
	end
	f.pos = start
	return nil
end

local function read_line(f, keep_newline)
	local bytes = f.bytes
	if f.pos > #bytes then
		return nil
	end
	local newline = string.find(bytes, "\n", f.pos, true)
	local last = newline or #bytes
	local line = string.sub(bytes, f.pos, keep_newline and last or (newline and last - 1 or last))
	f.pos = last + 1
	return line
end

-- One of read's formats: "n", "l", "L", "a" (a "*" before it allowed) or a byte count.
local function read_one(f, format)
	if math.type(format) == "integer" then
		if f.pos > #f.bytes then
			return nil
		end
		local chunk = string.sub(f.bytes, f.pos, f.pos + format - 1)
		f.pos = f.pos + #chunk
		return chunk
	end
	if type(format) ~= "string" then
		error("bad argument to 'read' (invalid format)", 3)
	end
	local kind = string.sub(format, 1, 1) == "*" and string.sub(format, 2, 2) or string.sub(format, 1, 1)
	if kind == "l" then
		return read_line(f, false)
	elseif kind == "L" then
		return read_line(f, true)
	elseif kind == "n" then
		return read_number(f)
	elseif kind == "a" then
		local rest = string.sub(f.bytes, f.pos)
		f.pos = #f.bytes + 1
		return rest
	end
	error("bad argument to 'read' (invalid format)", 3)
end

local function read_formats(f, n, ...)
	if n == 0 then
		return read_one(f, "l")
	end
	local results = {}
	for i = 1, n do
		local value = read_one(f, (select(i, ...)))
		results[i] = value
		if value == nil then
			return table.unpack(results, 1, i)
		end
	end
	return table.unpack(results, 1, n)
end

function File.read(f, ...)
	check_open(f)
	return read_formats(f, select("#", ...), ...)
end

function File.lines(f, ...)
	check_open(f)
	local n, formats = select("#", ...), table.pack(...)
	return function()
		if f.closed then
			error("file is already closed", 2)
		end
		return read_formats(f, n, table.unpack(formats, 1, n))
	end
end

function File.seek(f, whence, offset)
	check_open(f)
	whence, offset = whence or "cur", offset or 0
	local base
	if whence == "set" then
		base = 0
	elseif whence == "cur" then
		base = f.pos - 1
	elseif whence == "end" then
		base = #f.bytes
	else
		error("bad argument #1 to 'seek' (invalid option '" .. tostring(whence) .. "')", 2)
	end
	local position = base + math.tointeger(offset)
	if position < 0 then
		return nil, "Invalid argument", 22
	end
	f.pos = position + 1
	return position
end

function File.close(f)
	check_open(f)
	f.closed = true
	return true
end

function File.write(f)
	check_open(f)
	return nil, "Bad file descriptor (a data file is read-only)", 9
end

function File.flush(f)
	check_open(f)
	return f
end

function File.setvbuf(f)
	check_open(f)
	return true
end

local lua_io_type = io.type

function io.type(obj)
	if getmetatable(obj) == File then
		return obj.closed and "closed file" or "file"
	end
	return lua_io_type(obj)
end

function io.open(path, mode)
	path = tostring(path)
	mode = mode or "r"
	if type(mode) ~= "string" or not string.find(mode, "^[rwa]%+?b*$") then
		error("bad argument #2 to 'open' (invalid mode)", 2)
	end
	if mode ~= "r" and not string.find(mode, "^rb*$") then
		return nil, path .. ": Read-only file system (Lua services may only read data files)", 30
	end
	local bytes, message, errno = read_whole(path)
	if not bytes then
		return nil, message, errno
	end
	return open_file(bytes)
end

-- Closes the file when the first value read is nil (the end), as io.lines does.
local function close_at_end(f, ...)
	if (...) == nil then
		f:close()
	end
	return ...
end

function io.lines(path, ...)
	if path == nil then
		error("io.lines without a file name: a Lua service has no standard input", 2)
	end
	local f, message = io.open(path)
	if not f then
		error(message, 2)
	end
	local n, formats = select("#", ...), table.pack(...)
	return function()
		if f.closed then
			error("file is already closed", 2)
		end
		return close_at_end(f, read_formats(f, n, table.unpack(formats, 1, n)))
	end, nil, nil, f
end

function loadfile(filename, mode, ...)
	if filename == nil then
		return nil, "loadfile without a file name: a Lua service has no standard input"
	end
	local source, message = read_whole(tostring(filename))
	if not source then
		return nil, "cannot open " .. message
	end
	-- As luaL_loadfile: a first line starting with '#' is skipped (its newline kept).
	if string.sub(source, 1, 1) == "#" then
		source = string.gsub(source, "^[^\n]*", "", 1)
	end
	if select("#", ...) > 0 then
		return load(source, "@" .. filename, mode or "bt", (...))
	end
	return load(source, "@" .. filename, mode or "bt")
end

function dofile(filename)
	local f, err = loadfile(filename)
	if not f then
		error(err, 2)
	end
	return f()
end

return true
