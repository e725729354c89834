-- http.internal: HTTP/1.1 message parts shared by httpd, httpc and websocket (skynet's
-- API): headers (at most 8 KiB), chunked bodies, requests and responses over an
-- "interface" { read(n), write(s), readall() }. Malformed input raises or returns nil;
-- it never makes the reader wait for more than the limits allow.
local internal = {}

local type = type
local tonumber = tonumber
local sformat = string.format

-- the most bytes of a header block (request or status line, fields, blank line)
local LIMIT = 8192
internal.LIMIT = LIMIT
-- the longest chunk-size line
local CHUNK_LINE = 128

-- The size of the next chunk and what follows its line; nil for a bad line.
local function chunksize(read, body)
	while true do
		local f, e = body:find("\r\n", 1, true)
		if f then
			-- chunk extensions (";name=value") are ignored; 15 hex digits at most, so
			-- the size never wraps around
			local size = body:sub(1, f - 1):match "^%s*(%x+)%s*;?"
			if not size or #size > 15 then
				return
			end
			return tonumber(size, 16), body:sub(e + 1)
		end
		if #body > CHUNK_LINE then
			return
		end
		body = body .. read()
	end
end

local function readcrlf(read, body)
	if #body < 2 then
		body = body .. read(2 - #body)
	end
	if body:sub(1, 2) ~= "\r\n" then
		return
	end
	return body:sub(3)
end

-- Reads a header block into `lines` (without the blank line); returns the bytes read
-- after it, or nil when it passes the limit.
function internal.recvheader(read, lines, header)
	if header:sub(1, 2) == "\r\n" then
		return header:sub(3)
	end
	local e = header:find("\r\n\r\n", 1, true)
	while not e do
		if #header > LIMIT then
			return
		end
		local bytes = read()
		header = header .. bytes
		e = header:find("\r\n\r\n", math.max(1, #header - #bytes - 3), true)
		if not e and header:sub(1, 2) == "\r\n" then
			return header:sub(3)
		end
	end
	if e > LIMIT then
		return
	end
	for line in header:sub(1, e + 1):gmatch "(.-)\r\n" do
		lines[#lines + 1] = line
	end
	return header:sub(e + 4)
end

-- Header lines from `lines[from]` into `header` (names in lower case; repeated names
-- collect into an array; folded lines continue the last); nil when malformed.
function internal.parseheader(lines, from, header)
	local name
	for i = from, #lines do
		local line = lines[i]
		local first = line:byte(1)
		if first == 9 or first == 32 then
			if name == nil then
				return
			end
			local v = header[name]
			if type(v) == "table" then
				v[#v] = v[#v] .. " " .. line:match "^%s*(.-)%s*$"
			else
				header[name] = v .. " " .. line:match "^%s*(.-)%s*$"
			end
		else
			local value
			name, value = line:match "^([^:%s]+):%s*(.-)%s*$"
			if not name then
				return
			end
			name = name:lower()
			local old = header[name]
			if old == nil then
				header[name] = value
			elseif type(old) == "table" then
				old[#old + 1] = value
			else
				header[name] = { old, value }
			end
		end
	end
	return header
end

-- A chunked body (and its trailer fields, into `header`): the body and the header, or
-- nil when malformed or over `bodylimit`.
function internal.recvchunkedbody(read, bodylimit, header, body)
	local parts, size = {}, 0
	while true do
		local sz
		sz, body = chunksize(read, body)
		if not sz then
			return
		end
		if sz == 0 then
			break
		end
		if bodylimit and sz > bodylimit - size then
			return
		end
		size = size + sz
		if #body >= sz then
			parts[#parts + 1] = body:sub(1, sz)
			body = body:sub(sz + 1)
		else
			parts[#parts + 1] = body .. read(sz - #body)
			body = ""
		end
		body = readcrlf(read, body)
		if not body then
			return
		end
	end
	local trailer = {}
	body = internal.recvheader(read, trailer, body)
	if not body then
		return
	end
	-- trailer fields join the header, except those that frame the message
	local fields = internal.parseheader(trailer, 1, {})
	if not fields then
		return
	end
	for k, v in pairs(fields) do
		if k ~= "content-length" and k ~= "transfer-encoding" and k ~= "host" and header[k] == nil then
			header[k] = v
		end
	end
	return table.concat(parts), header
end

local function header_text(header, host)
	local parts = {}
	local has_host = false
	if header then
		for k, v in pairs(header) do
			if type(k) == "string" and k:lower() == "host" then
				has_host = true
			end
			if type(v) == "table" then
				for _, each in ipairs(v) do
					parts[#parts + 1] = sformat("%s:%s\r\n", k, each)
				end
			else
				parts[#parts + 1] = sformat("%s:%s\r\n", k, v)
			end
		end
	end
	if not has_host then
		table.insert(parts, 1, sformat("host:%s\r\n", host))
	end
	return table.concat(parts)
end

-- Sends a request and reads the response's status line and header: the status code,
-- the body bytes already read, the header (into `recvheader`).
function internal.request(interface, method, host, url, recvheader, header, content)
	local read, write = interface.read, interface.write
	local fields = header_text(header, host)
	if content then
		if header and header["transfer-encoding"] == "chunked" then
			write(sformat("%s %s HTTP/1.1\r\n%s\r\n", method, url, fields))
		else
			write(sformat("%s %s HTTP/1.1\r\n%scontent-length:%d\r\n\r\n", method, url, fields, #content))
		end
		write(content)
	else
		write(sformat("%s %s HTTP/1.1\r\n%scontent-length:0\r\n\r\n", method, url, fields))
	end
	local lines = {}
	local body = internal.recvheader(read, lines, "")
	if not body then
		error "Recv header failed"
	end
	local code = (lines[1] or ""):match "^HTTP/[%d%.]+%s+(%d%d%d)"
	code = tonumber(code)
	if not code then
		error("Invalid HTTP status line: " .. tostring(lines[1]))
	end
	local h = internal.parseheader(lines, 2, recvheader or {})
	if not h then
		error "Invalid HTTP response header"
	end
	return code, body, h
end

local function transfer_mode(header)
	local mode = header["transfer-encoding"]
	if mode and mode ~= "identity" and mode ~= "chunked" then
		error("Unsupport transfer-encoding " .. tostring(mode))
	end
	return mode
end

-- A response's body (after internal.request).
function internal.response(interface, code, body, header)
	if transfer_mode(header) == "chunked" then
		body = internal.recvchunkedbody(interface.read, nil, header, body)
		if not body then
			error "Invalid response body"
		end
		return body
	end
	local length = tonumber(header["content-length"])
	if length then
		if #body >= length then
			return body:sub(1, length)
		end
		return body .. interface.read(length - #body)
	elseif code == 204 or code == 304 or code < 200 then
		return ""
	end
	-- no length: the body ends when the server closes
	return body .. interface.readall()
end

---------------------------------------------------------------------------------------------
-- streamed responses: `for part, stream in httpc.request_stream(...)`: each call of the
-- stream returns the next part of the body (nil at the end, when the connection closes)

local stream = {}
stream.__index = stream

function stream:close()
	if self._onclose then
		self._onclose(self)
		self._onclose = nil
	end
end

function stream:padding()
	return self._reading(self), self
end

stream.__close = stream.close
stream.__call = stream.padding

local function ended(s)
	s._reading = stream.close
	s.connected = nil
end

local function stream_nobody(s)
	ended(s)
	return ""
end

local function stream_length(length)
	if length == 0 then
		return stream_nobody
	end
	return function(s)
		local body = s._body
		s._body = nil
		if body == nil or body == "" then
			local ok, data = pcall(s._interface.read)
			if not ok or not data then
				s.connected = false
				s:close()
				return
			end
			body = data
		end
		if #body >= length then
			ended(s)
			return body:sub(1, length)
		end
		length = length - #body
		return body
	end
end

local function stream_all(s)
	local body = s._body
	s._body = nil
	s._reading = function(st)
		local ok, data = pcall(st._interface.read)
		if not ok or not data or data == "" then
			st.connected = nil
			st:close()
			return
		end
		return data
	end
	return body
end

local function stream_chunked(s)
	local read = s._interface.read
	local ok, sz, body = pcall(chunksize, read, s._body)
	if not ok or not sz then
		s.connected = false
		s:close()
		return
	end
	if sz == 0 then
		local trailer = {}
		body = internal.recvheader(read, trailer, body)
		if body then
			internal.parseheader(trailer, 1, s.header)
		end
		ended(s)
		return ""
	end
	local part
	if #body >= sz then
		part, body = body:sub(1, sz), body:sub(sz + 1)
	else
		part, body = body .. read(sz - #body), ""
	end
	body = readcrlf(read, body)
	if not body then
		s.connected = false
		s:close()
		return
	end
	s._body = body
	return part
end

function internal.response_stream(interface, code, body, header)
	local read_func
	if transfer_mode(header) == "chunked" then
		read_func = stream_chunked
	else
		local length = tonumber(header["content-length"])
		if length then
			read_func = stream_length(length)
		elseif code == 204 or code == 304 or code < 200 then
			read_func = stream_nobody
		else
			read_func = stream_all
		end
	end
	return setmetatable({
		status = code,
		_body = body,
		_interface = interface,
		_reading = read_func,
		header = header,
		connected = true,
	}, stream)
end

return internal
