-- http.httpd: the server side of HTTP/1.1 over read/write functions (skynet's API):
--
--   local code, url, method, header, body = httpd.read_request(readfunc, bodylimit)
--   httpd.write_response(writefunc, statuscode, body, header)
--       -- body: a string (content-length), a function giving parts until nil (chunked),
--       -- or nil
--
-- read_request answers 400/413/501/505 codes for requests it refuses (a header over 8 KiB:
-- 413), or nil and the error when the connection failed.
local internal = require "http.internal"

local sformat = string.format

local httpd = {}

local status_text = {
	[100] = "Continue", [101] = "Switching Protocols",
	[200] = "OK", [201] = "Created", [202] = "Accepted", [203] = "Non-Authoritative Information",
	[204] = "No Content", [205] = "Reset Content", [206] = "Partial Content",
	[300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
	[304] = "Not Modified", [305] = "Use Proxy", [307] = "Temporary Redirect",
	[308] = "Permanent Redirect",
	[400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden",
	[404] = "Not Found", [405] = "Method Not Allowed", [406] = "Not Acceptable",
	[407] = "Proxy Authentication Required", [408] = "Request Time-out", [409] = "Conflict",
	[410] = "Gone", [411] = "Length Required", [412] = "Precondition Failed",
	[413] = "Request Entity Too Large", [414] = "Request-URI Too Large",
	[415] = "Unsupported Media Type", [416] = "Requested range not satisfiable",
	[417] = "Expectation Failed", [429] = "Too Many Requests",
	[500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
	[503] = "Service Unavailable", [504] = "Gateway Time-out", [505] = "HTTP Version not supported",
}

local function readall(read, bodylimit)
	local lines = {}
	local body = internal.recvheader(read, lines, "")
	if not body then
		return 413
	end
	local method, url, version = (lines[1] or ""):match "^(%a+)%s+(%S+)%s+HTTP/(%d%.%d)$"
	if not method then
		return 400
	end
	version = tonumber(version)
	if version < 1.0 or version > 1.1 then
		return 505
	end
	local header = internal.parseheader(lines, 2, {})
	if not header then
		return 400
	end
	local mode = header["transfer-encoding"]
	if mode and mode ~= "identity" and mode ~= "chunked" then
		return 501
	end
	if mode == "chunked" then
		body, header = internal.recvchunkedbody(read, bodylimit, header, body)
		if not body then
			return 413
		end
	else
		local length = header["content-length"]
		if length then
			length = math.tointeger(tonumber(length))
			if not length or length < 0 then
				return 400
			end
			if bodylimit and length > bodylimit then
				return 413
			end
			if #body >= length then
				body = body:sub(1, length)
			else
				body = body .. read(length - #body)
			end
		else
			-- no body: what was read past the header belongs to the next request
			body = ""
		end
	end
	return 200, url, method, header, body
end

function httpd.read_request(read, bodylimit)
	local ok, code, url, method, header, body = pcall(readall, read, bodylimit)
	if ok then
		return code, url, method, header, body
	end
	return nil, code
end

local function writeall(write, statuscode, body, header)
	local parts = { sformat("HTTP/1.1 %03d %s\r\n", statuscode, status_text[statuscode] or "") }
	if header then
		for k, v in pairs(header) do
			if type(v) == "table" then
				for _, each in ipairs(v) do
					parts[#parts + 1] = sformat("%s: %s\r\n", k, each)
				end
			else
				parts[#parts + 1] = sformat("%s: %s\r\n", k, v)
			end
		end
	end
	local t = type(body)
	if t == "string" then
		parts[#parts + 1] = sformat("content-length: %d\r\n\r\n", #body)
		parts[#parts + 1] = body
		write(table.concat(parts))
	elseif t == "function" then
		parts[#parts + 1] = "transfer-encoding: chunked\r\n"
		write(table.concat(parts))
		while true do
			local s = body()
			if s == nil then
				write "\r\n0\r\n\r\n"
				break
			elseif s ~= "" then
				write(sformat("\r\n%x\r\n", #s))
				write(s)
			end
		end
	else
		assert(t == "nil", "the body must be a string, a function or nil")
		parts[#parts + 1] = "\r\n"
		write(table.concat(parts))
	end
end

-- true, or false and the error (the connection failed).
function httpd.write_response(...)
	return pcall(writeall, ...)
end

return httpd
