-- http.url: a request target's path and query, and a query's fields (skynet's API).
local url = {}

local function decode_byte(hex)
	return string.char(tonumber(hex, 16))
end

-- `+` is a space, `%XX` a byte
local function decode(text)
	text = text:gsub("+", " ")
	return (text:gsub("%%(%x%x)", decode_byte))
end
url.decode = decode

-- "/path?query" -> the decoded path, the raw query ("" when none)
function url.parse(u)
	local path, query = u:match "([^?]*)%??(.*)"
	if path then
		path = decode(path)
	end
	return path, query
end

-- "a=1&b=2&b=3" -> { a = "1", b = { "2", "3" } } (names and values decoded)
function url.parse_query(q)
	local r = {}
	for k, v in q:gmatch "(.-)=([^&]*)&?" do
		local dk, dv = decode(k), decode(v)
		local old = r[dk]
		if old == nil then
			r[dk] = dv
		elseif type(old) == "table" then
			old[#old + 1] = dv
		else
			r[dk] = { old, dv }
		end
	end
	return r
end

return url
