-- skynet.db.mysql: a MySQL / MariaDB client with skynet's API, over skynet.socketchannel
-- (order mode: many coroutines may share one connection; replies come back in order).
--
--   local db = mysql.connect { host, port = 3306, database, user, password, charset,
--                              max_packet_size = 1M, compact_arrays, on_connect, overload }
--   db:query(sql)            -- rows (tables by column name, or arrays if compact), an OK
--                            -- result {affected_rows, insert_id, server_status,
--                            -- warning_count, message}, {badresult = true, err, errno,
--                            -- sqlstate}, or for several statements an array of those with
--                            -- multiresultset = true
--   local stmt = db:prepare(sql); db:execute(stmt, ...); db:stmt_reset(stmt);
--   db:stmt_close(stmt); db:ping(); db:server_ver(); db:set_compact_arrays(v);
--   db:disconnect(); mysql.quote_sql_str(s)
--
-- Authentication: mysql_native_password, and caching_sha2_password's fast path (the server
-- has the account cached); the server may switch plugins (auth switch request). The full
-- caching_sha2 exchange needs TLS or the server's RSA key and is not supported.
local socketchannel = require "skynet.socketchannel"
local crypt = require "skynet.crypt"
local digest = require "skywasm.digest"

local strbyte = string.byte
local strchar = string.char
local strsub = string.sub
local strpack = string.pack
local strunpack = string.unpack
local strformat = string.format
local strrep = string.rep
local tointeger = math.tointeger
local setmetatable = setmetatable
local tonumber = tonumber
local concat = table.concat

local mysql = { _VERSION = "0.14" }
local mt = { __index = mysql }

-- default collation of each character set (information_schema.collations, IS_DEFAULT)
local CHARSET = {
	_default = 0, big5 = 1, dec8 = 3, cp850 = 4, hp8 = 6, koi8r = 7, latin1 = 8, latin2 = 9,
	swe7 = 10, ascii = 11, ujis = 12, sjis = 13, hebrew = 16, tis620 = 18, euckr = 19,
	koi8u = 22, gb2312 = 24, greek = 25, cp1250 = 26, gbk = 28, latin5 = 30, armscii8 = 32,
	utf8 = 33, ucs2 = 35, cp866 = 36, keybcs2 = 37, macce = 38, macroman = 39, cp852 = 40,
	latin7 = 41, utf8mb4 = 45, cp1251 = 51, utf16 = 54, utf16le = 56, cp1256 = 57,
	cp1257 = 59, utf32 = 60, binary = 63, geostd8 = 92, cp932 = 95, eucjpms = 97,
	gb18030 = 248,
}

local COM_QUERY = 0x03
local COM_PING = 0x0e
local COM_STMT_PREPARE = 0x16
local COM_STMT_EXECUTE = 0x17
local COM_STMT_CLOSE = 0x19
local COM_STMT_RESET = 0x1a

local SERVER_MORE_RESULTS_EXISTS = 0x08
-- what the client says it can do: skynet's set (long password, found rows, long flag,
-- connect with db, ignore space, protocol 4.1, transactions, secure connection, multi
-- statements and results...), plus PS multi results and plugin auth; never local files
local CLIENT_FLAGS = 0x0003F74F | 0x00040000 | 0x00080000
local CLIENT_PLUGIN_AUTH = 0x00080000
-- a packet's payload tops out here; a longer one continues in the next packet
local MAX_PAYLOAD = 0xffffff
-- the largest message taken from the server (continued packets joined)
local MAX_RECEIVE = 256 * 1024 * 1024

---------------------------------------------------------------------------------------------
-- packets

-- The packets of one message with sequence numbers from `seq`: the payload split at 16 MiB.
local function packets(payload, seq)
	local len = #payload
	if len < MAX_PAYLOAD then
		return strpack("<I3B", len, seq & 0xff) .. payload
	end
	local parts, pos = {}, 1
	while true do
		local n = len - pos + 1
		if n > MAX_PAYLOAD then
			n = MAX_PAYLOAD
		end
		parts[#parts + 1] = strpack("<I3B", n, seq & 0xff)
		parts[#parts + 1] = strsub(payload, pos, pos + n - 1)
		pos = pos + n
		seq = seq + 1
		if n < MAX_PAYLOAD then
			break
		end
	end
	return concat(parts)
end

local function command(code, body)
	return packets(strchar(code) .. (body or ""), 0)
end

-- The next message from the server: its payload (continued packets joined), its kind and
-- its last sequence number.
local function read_packet(so)
	local parts, seq, len = {}, nil, nil
	local total = 0
	repeat
		len, seq = strunpack("<I3B", so:read(4))
		total = total + len
		if total > MAX_RECEIVE then
			error("mysql: a message over " .. MAX_RECEIVE .. " bytes")
		end
		parts[#parts + 1] = len > 0 and so:read(len) or ""
	until len < MAX_PAYLOAD
	local data = #parts == 1 and parts[1] or concat(parts)
	local first = strbyte(data, 1)
	local kind
	if first == 0x00 then
		kind = "OK"
	elseif first == 0xff then
		kind = "ERR"
	elseif first == 0xfe and #data < 9 then
		kind = "EOF"
	else
		kind = "DATA"
	end
	return data, kind, seq
end

-- A length-encoded integer at `pos`: the value (nil for NULL) and the next position.
local function lenenc_int(data, pos)
	local first = strbyte(data, pos)
	if not first then
		error "mysql: truncated packet"
	end
	if first < 251 then
		return first, pos + 1
	elseif first == 251 then
		return nil, pos + 1
	elseif first == 252 then
		return strunpack("<I2", data, pos + 1)
	elseif first == 253 then
		return strunpack("<I3", data, pos + 1)
	elseif first == 254 then
		return strunpack("<I8", data, pos + 1)
	end
	error "mysql: bad length-encoded integer"
end

local function lenenc_str(data, pos)
	local len
	len, pos = lenenc_int(data, pos)
	if len == nil then
		return nil, pos
	end
	if pos + len - 1 > #data then
		error "mysql: truncated packet"
	end
	return strsub(data, pos, pos + len - 1), pos + len
end

local function lenenc(n)
	if n < 251 then
		return strchar(n)
	elseif n < 0x10000 then
		return strpack("<BI2", 0xfc, n)
	elseif n < 0x1000000 then
		return strpack("<BI3", 0xfd, n)
	end
	return strpack("<BI8", 0xfe, n)
end

local function parse_ok(packet)
	local res = {}
	local pos
	res.affected_rows, pos = lenenc_int(packet, 2)
	res.insert_id, pos = lenenc_int(packet, pos)
	res.server_status, res.warning_count, pos = strunpack("<I2I2", packet, pos)
	local message = strsub(packet, pos)
	if message ~= "" then
		res.message = message
	end
	return res
end

local function parse_err(packet)
	local errno, pos = strunpack("<I2", packet, 2)
	local sqlstate
	if strsub(packet, pos, pos) == "#" then
		sqlstate = strsub(packet, pos + 1, pos + 5)
		pos = pos + 6
	end
	return errno, strsub(packet, pos), sqlstate
end

-- EOF: warning count, status flags
local function parse_eof(packet)
	return strunpack("<I2I2", packet, 2)
end

local function parse_column(data)
	local col = {}
	local pos = 1
	for _ = 1, 4 do -- catalog, schema, table, org_table
		local _
		_, pos = lenenc_str(data, pos)
	end
	col.name, pos = lenenc_str(data, pos)
	local _
	_, pos = lenenc_str(data, pos) -- org_name
	pos = pos + 1 -- length of the fixed fields
	local flags
	_, _, col.type, flags = strunpack("<I2I4BI2", data, pos)
	if flags & 0x20 == 0 then
		col.is_signed = true
	end
	return col
end

---------------------------------------------------------------------------------------------
-- authentication

-- mysql_native_password: SHA1(password) XOR SHA1(nonce .. SHA1(SHA1(password)))
local function native_token(password, nonce)
	if password == "" then
		return ""
	end
	local stage1 = crypt.sha1(password)
	return crypt.xor_str(crypt.sha1(nonce .. crypt.sha1(stage1)), stage1)
end

-- caching_sha2_password's scramble: SHA256(password) XOR SHA256(SHA256(SHA256(password)) .. nonce)
local function sha2_token(password, nonce)
	if password == "" then
		return ""
	end
	local stage1 = digest.sha256(password)
	return crypt.xor_str(stage1, digest.sha256(digest.sha256(stage1) .. nonce))
end

local function token_for(plugin, password, nonce)
	if plugin == "mysql_native_password" then
		return native_token(password, nonce)
	elseif plugin == "caching_sha2_password" then
		return sha2_token(password, nonce)
	elseif plugin == "mysql_clear_password" then
		error "mysql: the server asks for the password in clear text, which this client never sends"
	end
	error("mysql: authentication plugin " .. tostring(plugin) .. " is not supported")
end

local function auth_error(packet)
	local errno, msg, sqlstate = parse_err(packet)
	return strformat("errno:%d, msg:%s,sqlstate:%s", errno, msg, tostring(sqlstate))
end

-- The greeting (protocol 10): the server's version, capabilities, nonce and plugin.
local function parse_greeting(self, packet)
	if strbyte(packet, 1) == 0xff then
		error(auth_error(packet))
	end
	self.protocol_ver = strbyte(packet, 1)
	local server_ver, pos = strunpack("z", packet, 2)
	self._server_ver = server_ver
	local nonce1
	self.thread_id, nonce1, pos = strunpack("<I4c8", packet, pos)
	pos = pos + 1 -- filler
	local caps_low, lang, status, caps_high, nonce_len
	caps_low, lang, status, caps_high, nonce_len, pos = strunpack("<I2BI2I2B", packet, pos)
	self._server_capabilities = caps_low | caps_high << 16
	self._server_lang, self._server_status = lang, status
	pos = pos + 10 -- reserved
	local n2 = math.max(13, nonce_len - 8)
	local nonce2 = strsub(packet, pos, pos + n2 - 1)
	pos = pos + n2
	-- the second part ends with a NUL that is not part of the nonce
	if strbyte(nonce2, -1) == 0 then
		nonce2 = strsub(nonce2, 1, -2)
	end
	local plugin = "mysql_native_password"
	if self._server_capabilities & CLIENT_PLUGIN_AUTH ~= 0 and pos <= #packet then
		plugin = strunpack("z", packet, pos)
	end
	return nonce1 .. nonce2, plugin
end

-- a response function: the next packet, its kind and sequence number
local function next_packet(so)
	return true, { read_packet(so) }
end

-- socketchannel's auth function: the handshake after every (re)connect. The server's
-- answers are followed until it says OK: an auth switch to another plugin (with a new
-- nonce), or caching_sha2's fast-auth result.
local function login(self, opts)
	local user = opts.user or ""
	local password = opts.password or ""
	local database = opts.database or ""
	local charset = CHARSET[opts.charset or "_default"] or error("mysql: unknown charset " .. tostring(opts.charset))
	return function(channel)
		local greeting = channel:response(next_packet)
		local nonce, plugin = parse_greeting(self, greeting[1])
		local seq = greeting[3] + 1
		local response = strpack("<I4I4Bc23zs1zz", CLIENT_FLAGS, self._max_packet_size, charset,
			strrep("\0", 23), user, token_for(plugin, password, nonce), database, plugin)
		local answer = channel:request(packets(response, seq), next_packet)
		while true do
			local packet, kind = answer[1], answer[2]
			seq = answer[3]
			local first = strbyte(packet, 1)
			if kind == "OK" then
				break
			elseif kind == "ERR" then
				error(auth_error(packet))
			elseif first == 0xfe then
				plugin, nonce = strunpack("z", packet, 2)
				nonce = strsub(packet, nonce)
				if strbyte(nonce, -1) == 0 then
					nonce = strsub(nonce, 1, -2)
				end
				seq = seq + 1
				answer = channel:request(packets(token_for(plugin, password, nonce), seq), next_packet)
			elseif first == 0x01 and strbyte(packet, 2) == 0x03 then
				-- caching_sha2: fast authentication succeeded; an OK follows
				answer = channel:response(next_packet)
			elseif first == 0x01 and strbyte(packet, 2) == 0x04 then
				error "mysql: caching_sha2_password full authentication (TLS or the server's RSA key) is not supported; log in once with another client so the server caches the account, or use mysql_native_password"
			else
				error(strformat("mysql: unexpected packet during login (0x%02x)", first))
			end
		end
		if opts.on_connect then
			opts.on_connect(self)
		end
	end
end

---------------------------------------------------------------------------------------------
-- results

-- text protocol values: numbers for the numeric column types, as skynet's
local converters = {}
for t = 0x01, 0x05 do -- tiny, short, long, float, double
	converters[t] = tonumber
end
converters[0x08] = tonumber -- long long
converters[0x09] = tonumber -- int24
converters[0x0d] = tonumber -- year
converters[0xf6] = tonumber -- new decimal

local function text_row(data, cols, compact)
	local row, pos = {}, 1
	for i = 1, #cols do
		local value
		value, pos = lenenc_str(data, pos)
		local col = cols[i]
		if value ~= nil then
			local conv = converters[col.type]
			if conv then
				value = conv(value)
			end
		end
		if compact then
			row[i] = value
		else
			row[col.name] = value
		end
	end
	return row
end

local function signed(fmt_signed, fmt_unsigned)
	return function(data, pos, is_signed)
		return strunpack(is_signed and fmt_signed or fmt_unsigned, data, pos)
	end
end

local function datetime(data, pos)
	local len
	len, pos = lenenc_int(data, pos)
	if len == 0 then
		return "0000-00-00 00:00:00", pos
	end
	local year, month, day = strunpack("<I2BB", data, pos)
	local hour, minute, second, micro = 0, 0, 0, 0
	if len >= 7 then
		hour, minute, second = strunpack("BBB", data, pos + 4)
	end
	if len >= 11 then
		micro = strunpack("<I4", data, pos + 7)
	end
	local text = strformat("%04d-%02d-%02d %02d:%02d:%02d", year, month, day, hour, minute, second)
	if micro ~= 0 then
		text = text .. strformat(".%06d", micro)
	end
	return text, pos + len
end

local function date(data, pos)
	local len
	len, pos = lenenc_int(data, pos)
	if len == 0 then
		return "0000-00-00", pos
	end
	local year, month, day = strunpack("<I2BB", data, pos)
	return strformat("%04d-%02d-%02d", year, month, day), pos + len
end

local function time(data, pos)
	local len
	len, pos = lenenc_int(data, pos)
	if len == 0 then
		return "00:00:00", pos
	end
	local negative, days, hour, minute, second = strunpack("<BI4BBB", data, pos)
	local text = strformat("%s%02d:%02d:%02d", negative == 1 and "-" or "", days * 24 + hour, minute, second)
	if len >= 12 then
		text = text .. strformat(".%06d", (strunpack("<I4", data, pos + 8)))
	end
	return text, pos + len
end

local function decimal(data, pos)
	local text
	text, pos = lenenc_str(data, pos)
	return tonumber(text) or text, pos
end

-- binary protocol values, by column type
local binary = {
	[0x00] = decimal,
	[0x01] = signed("<i1", "<I1"),
	[0x02] = signed("<i2", "<I2"),
	[0x03] = signed("<i4", "<I4"),
	[0x04] = function(data, pos) return strunpack("<f", data, pos) end,
	[0x05] = function(data, pos) return strunpack("<d", data, pos) end,
	[0x07] = datetime,
	[0x08] = signed("<i8", "<I8"),
	[0x09] = signed("<i4", "<I4"), -- int24 travels in 4 bytes
	[0x0a] = date,
	[0x0b] = time,
	[0x0c] = datetime,
	[0x0d] = signed("<i2", "<I2"), -- year
	[0xf6] = decimal,
}
for _, t in ipairs { 0x0f, 0x10, 0xf5, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff } do
	binary[t] = lenenc_str
end

local function binary_row(data, cols, compact)
	local ncols = #cols
	-- a 0x00 header, then the NULL bitmap with two reserved bits
	local pos = 2 + (ncols + 9) // 8
	local row = {}
	for i = 1, ncols do
		local bit = i + 1
		local null = strbyte(data, 2 + bit // 8) & (1 << (bit % 8)) ~= 0
		if not null then
			local col = cols[i]
			local parse = binary[col.type]
			if not parse then
				error("mysql: unsupported column type " .. col.type)
			end
			local value
			value, pos = parse(data, pos, col.is_signed)
			if compact then
				row[i] = value
			else
				row[col.name] = value
			end
		end
	end
	return row
end

-- Columns until their EOF.
local function read_columns(so, count)
	local cols = {}
	for i = 1, count do
		local packet, kind = read_packet(so)
		if kind == "ERR" then
			return nil, parse_err(packet)
		end
		cols[i] = parse_column(packet)
	end
	local packet, kind = read_packet(so)
	if kind ~= "EOF" then
		return nil, "unexpected packet type " .. kind .. " while eof packet is expected"
	end
	return cols
end

-- One result: rows or an OK table; "again" when more follow. On a server error:
-- nil, err, errno, sqlstate.
local function read_result(self, so, row_of)
	local packet, kind = read_packet(so)
	if kind == "ERR" then
		local errno, msg, sqlstate = parse_err(packet)
		return nil, msg, errno, sqlstate
	elseif kind == "OK" then
		local res = parse_ok(packet)
		if res.server_status & SERVER_MORE_RESULTS_EXISTS ~= 0 then
			return res, "again"
		end
		return res
	elseif kind ~= "DATA" then
		return nil, "packet type " .. kind .. " not supported"
	end
	local count = lenenc_int(packet, 1)
	if strbyte(packet, 1) == 0xfb then
		return nil, "LOAD DATA LOCAL INFILE is not supported"
	end
	local cols, err, errno, sqlstate = read_columns(so, count)
	if not cols then
		return nil, err, errno, sqlstate
	end
	local compact = self.compact
	local rows = {}
	while true do
		packet, kind = read_packet(so)
		if kind == "EOF" then
			local _, status = parse_eof(packet)
			if status & SERVER_MORE_RESULTS_EXISTS ~= 0 then
				return rows, "again"
			end
			return rows
		elseif kind == "ERR" then
			local e, msg, state = parse_err(packet)
			return nil, msg, e, state
		end
		rows[#rows + 1] = row_of(packet, cols, compact)
	end
end

local function bad(err, errno, sqlstate)
	return { badresult = true, err = err, errno = errno, sqlstate = sqlstate }
end

-- A response function reading every result of a command. `multi_key` names the flag of
-- several results (skynet's execute spells it "mulitresultset"; both are set there).
local function results(self, row_of, multi_keys)
	return function(so)
		local res, err, errno, sqlstate = read_result(self, so, row_of)
		if not res then
			return true, bad(err, errno, sqlstate)
		end
		if err ~= "again" then
			return true, res
		end
		local all = { res }
		for _, key in ipairs(multi_keys) do
			all[key] = true
		end
		while err == "again" do
			res, err, errno, sqlstate = read_result(self, so, row_of)
			if not res then
				all.badresult, all.err, all.errno, all.sqlstate = true, err, errno, sqlstate
				break
			end
			all[#all + 1] = res
		end
		return true, all
	end
end

---------------------------------------------------------------------------------------------
-- the API

-- Connects (one try: raises when the server cannot be reached or refuses the login).
function mysql.connect(opts)
	local self = setmetatable({}, mt)
	self._max_packet_size = opts.max_packet_size or 1024 * 1024
	self.compact = opts.compact_arrays
	self.sockchannel = socketchannel.channel {
		host = opts.host,
		port = opts.port or 3306,
		auth = login(self, opts),
		overload = opts.overload,
	}
	self.query_resp = results(self, text_row, { "multiresultset" })
	self.execute_resp = results(self, binary_row, { "multiresultset", "mulitresultset" })
	self.sockchannel:connect(true)
	return self
end

function mysql:disconnect()
	self.sockchannel:close()
	setmetatable(self, nil)
end

function mysql:query(sql)
	return self.sockchannel:request(command(COM_QUERY, sql), self.query_resp)
end

function mysql:ping()
	return self.sockchannel:request(command(COM_PING), self.query_resp)
end

-- A prepared statement: {prepare_id, field_count, param_count, warning_count, params,
-- fields}, or {badresult = true, ...}.
function mysql:prepare(sql)
	return self.sockchannel:request(command(COM_STMT_PREPARE, sql), function(so)
		local packet, kind = read_packet(so)
		if kind == "ERR" then
			local errno, msg, sqlstate = parse_err(packet)
			return true, bad(msg, errno, sqlstate)
		end
		if kind ~= "OK" then
			return true, bad("first typ must be OK,now" .. kind, 300201)
		end
		local stmt = { params = {}, fields = {} }
		stmt.prepare_id, stmt.field_count, stmt.param_count, stmt.warning_count =
			strunpack("<I4I2I2xI2", packet, 2)
		if stmt.param_count > 0 then
			stmt.params = assert(read_columns(so, stmt.param_count))
		end
		if stmt.field_count > 0 then
			stmt.fields = assert(read_columns(so, stmt.field_count))
		end
		return true, stmt
	end)
end

-- a parameter's type (2 bytes) and value
local function parameter(v)
	local t = type(v)
	if t == "number" then
		local i = tointeger(v)
		if i then
			return strpack("<I2", 0x08), strpack("<i8", i)
		end
		return strpack("<I2", 0x05), strpack("<d", v)
	elseif t == "string" then
		return strpack("<I2", 0x0f), lenenc(#v) .. v
	elseif t == "boolean" then
		return strpack("<I2", 0x01), strchar(v and 1 or 0)
	elseif t == "nil" then
		return strpack("<I2", 0x06), ""
	end
	error("invalid parameter type " .. t, 4)
end

function mysql:execute(stmt, ...)
	local n = select("#", ...)
	if n ~= stmt.param_count then
		error("require stmt.param_count " .. tostring(stmt.param_count) .. " get arg_num " .. n, 2)
	end
	local parts = { strpack("<BI4BI4", COM_STMT_EXECUTE, stmt.prepare_id, 0, 1) }
	if n > 0 then
		local args = { ... }
		local nulls = {}
		for byte = 1, (n + 7) // 8 do
			local bits = 0
			for j = 0, 7 do
				local i = (byte - 1) * 8 + j + 1
				if i <= n and args[i] == nil then
					bits = bits | (1 << j)
				end
			end
			nulls[byte] = strchar(bits)
		end
		parts[2] = concat(nulls)
		parts[3] = "\1" -- new parameters bound
		local types, values = {}, {}
		for i = 1, n do
			types[i], values[i] = parameter(args[i])
		end
		parts[4] = concat(types)
		parts[5] = concat(values)
	end
	return self.sockchannel:request(packets(concat(parts), 0), self.execute_resp)
end

function mysql:stmt_reset(stmt)
	return self.sockchannel:request(command(COM_STMT_RESET, strpack("<I4", stmt.prepare_id)), self.query_resp)
end

-- (the server does not answer a close)
function mysql:stmt_close(stmt)
	return self.sockchannel:request(command(COM_STMT_CLOSE, strpack("<I4", stmt.prepare_id)))
end

function mysql:server_ver()
	return self._server_ver
end

function mysql:set_compact_arrays(value)
	self.compact = value
end

local escape = {
	["\0"] = "\\0", ["\b"] = "\\b", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
	["\26"] = "\\Z", ["\\"] = "\\\\", ["'"] = "\\'", ['"'] = '\\"',
}

-- `str` as a quoted SQL string literal.
function mysql.quote_sql_str(str)
	return strformat("'%s'", (string.gsub(str, "[%z\b\n\r\t\26\\'\"]", escape)))
end

return mysql
