-- http.websocket: RFC 6455 WebSocket server and client over skynet.socket (skynet's API).
--
-- Server: websocket.accept(fd, handle, "ws", addr [, {upgrade = {header, method, url}}])
-- runs the connection until it closes, calling handle.connect(id), handshake(id, header,
-- url), message(id, data, op), ping(id), pong(id), close(id, code, reason), error(id),
-- warning(ws, size). Client: local id = websocket.connect("ws://host:port/path" [, header,
-- timeout]); websocket.read(id) (a message, or false and the close payload), write(id,
-- data [, "text" | "binary", masking_key]), ping(id), close(id [, code, reason]),
-- addrinfo(id), real_ip(id), is_close(id).
--
-- Frames are checked: reserved bits, unknown opcodes, fragmented or oversized control
-- frames end the connection; a message over the size limit (256 KiB for a server, 16 MiB
-- for a client) too. A client masks what it sends, as RFC 6455 requires. wss goes through
-- the host's TLS (http.tlshelper): a server presents the node's tls_cert, a client
-- verifies the server's name.
local internal = require "http.internal"
local socket = require "skynet.socket"
local crypt = require "skynet.crypt"
local httpd = require "http.httpd"
local skynet = require "skynet"
local sockethelper = require "http.sockethelper"
local dns = require "skynet.dns"

local socket_error = sockethelper.socket_error
local spack = string.pack
local sunpack = string.unpack
local sformat = string.format

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
local MAX_SERVER_MESSAGE = 256 * 1024
local MAX_CLIENT_MESSAGE = 16 * 1024 * 1024
-- the most frames one message may come in
local MAX_FRAGMENTS = 4096

local M = {}

-- open connections, by socket id
local pool = {}

local function drop(ws)
	if pool[ws.id] == ws then
		pool[ws.id] = nil
	end
	ws.close()
end

local function is_closed(id)
	return not pool[id]
end
M.is_close = is_closed

-- What was read past a handshake is read first.
local function prepend(ws, rest)
	if rest ~= "" then
		ws.read = sockethelper.readfunc(ws.id, rest)
	end
end

local OP = { frame = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA }
local OP_NAME = {}
for name, code in pairs(OP) do
	OP_NAME[code] = name
end

local function random_key()
	return (sunpack("<I4", crypt.randomkey()))
end

local function write_frame(ws, op, payload, masking_key)
	payload = payload or ""
	local len = #payload
	if ws.mode == "client" and not masking_key then
		masking_key = random_key()
	end
	local b1 = 0x80 | OP[op]
	local mask = masking_key and 0x80 or 0
	local head
	if len < 126 then
		head = spack("BB", b1, mask | len)
	elseif len <= 0xffff then
		head = spack(">BBI2", b1, mask | 126, len)
	else
		head = spack(">BBI8", b1, mask | 127, len)
	end
	if masking_key then
		local key = spack(">I4", masking_key)
		head = head .. key
		if len > 0 then
			payload = crypt.xor_str(payload, key)
		end
	end
	ws.write(head .. payload)
end

-- The next frame: fin, op name, payload (unmasked). Raises on a frame the protocol forbids.
local function read_frame(ws)
	local b1, b2 = sunpack("BB", ws.read(2))
	if b1 & 0x70 ~= 0 then
		error "websocket: reserved bits set (no extension was agreed)"
	end
	local fin = b1 & 0x80 ~= 0
	local op = OP_NAME[b1 & 0x0f]
	if not op then
		error(sformat("websocket: unknown opcode 0x%x", b1 & 0x0f))
	end
	local len = b2 & 0x7f
	if len == 126 then
		len = sunpack(">I2", ws.read(2))
	elseif len == 127 then
		len = sunpack(">i8", ws.read(8))
		if len < 0 then
			error "websocket: bad payload length"
		end
	end
	if op == "close" or op == "ping" or op == "pong" then
		if not fin or len > 125 then
			error("websocket: a " .. op .. " frame must be whole and at most 125 bytes")
		end
	end
	if len > ws.limit then
		error(sformat("websocket: a frame of %d bytes is over the limit of %d", len, ws.limit))
	end
	local key = b2 & 0x80 ~= 0 and ws.read(4)
	local payload = len > 0 and ws.read(len) or ""
	if key and len > 0 then
		payload = crypt.xor_str(payload, key)
	end
	return fin, op, payload
end

local function close_payload(payload)
	if #payload >= 2 then
		return sunpack(">I2", payload), payload:sub(3)
	end
end

-- Reads frames until a whole message: data, op; or for a close: nil, "close", payload.
-- Pings are answered; `on` (optional) is told of pings and pongs.
local function read_message(ws, on)
	local parts, size, first
	while true do
		local fin, op, payload = read_frame(ws)
		if op == "close" then
			return nil, "close", payload
		elseif op == "ping" then
			write_frame(ws, "pong", payload)
			if on then
				on("ping")
			end
		elseif op == "pong" then
			if on then
				on("pong")
			end
		else
			if op == "frame" then
				if not parts then
					error "websocket: a continuation frame without a message"
				end
			elseif parts then
				error "websocket: a new message inside a fragmented one"
			end
			if fin and not parts then
				return payload, op
			end
			parts = parts or {}
			if #parts >= MAX_FRAGMENTS then
				error(sformat("websocket: a message in more than %d frames", MAX_FRAGMENTS))
			end
			parts[#parts + 1] = payload
			size = (size or 0) + #payload
			first = first or op
			if size > ws.limit then
				error(sformat("websocket: a message over the limit of %d bytes", ws.limit))
			end
			if fin then
				return table.concat(parts), first
			end
		end
	end
end

---------------------------------------------------------------------------------------------
-- server

local function call(ws, method, ...)
	local f = ws.handle and ws.handle[method]
	if f then
		f(ws.id, ...)
	end
end

-- The handshake: nil, header, url when accepted; otherwise an HTTP status and a reason.
local function read_handshake(ws, upgrade)
	local header, url
	if upgrade then
		header, url = upgrade.header, upgrade.url
		if upgrade.method ~= "GET" then
			return 400, "need GET method"
		end
	else
		local lines = {}
		local rest = internal.recvheader(ws.read, lines, "")
		if not rest then
			return 413
		end
		prepend(ws, rest)
		local method, target, version = (lines[1] or ""):match "^(%a+)%s+(%S+)%s+HTTP/(%d%.%d)$"
		if not method then
			return 400
		end
		if method ~= "GET" then
			return 400, "need GET method"
		end
		if tonumber(version) < 1.1 then
			return 505
		end
		url = target
		header = internal.parseheader(lines, 2, {})
	end
	if not header then
		return 400
	end
	if type(header.upgrade) ~= "string" or header.upgrade:lower() ~= "websocket" then
		return 426, "Upgrade Required"
	end
	if not header.host then
		return 400, "host Required"
	end
	if type(header.connection) ~= "string" or not header.connection:lower():find("upgrade", 1, true) then
		return 400, "Connection must Upgrade"
	end
	local key = header["sec-websocket-key"]
	if type(key) ~= "string" then
		return 400, "Sec-WebSocket-Key Required"
	end
	local ok, raw = pcall(crypt.base64decode, key)
	if not ok or #raw ~= 16 then
		return 400, "Sec-WebSocket-Key invalid"
	end
	if header["sec-websocket-version"] ~= "13" then
		return 400, "Sec-WebSocket-Version must 13"
	end
	local protocol = ""
	local wanted = header["sec-websocket-protocol"]
	if wanted then
		-- as skynet's: the one subprotocol spoken is "chat"
		if not (" " .. tostring(wanted):gsub(",", " ") .. " "):find(" chat ", 1, true) then
			return 400, "Sec-WebSocket-Protocol need include chat"
		end
		protocol = "Sec-WebSocket-Protocol: chat\r\n"
	end
	ws.real_ip = header["x-real-ip"]
	local accept = crypt.base64encode(crypt.sha1(key .. GUID))
	ws.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		.. sformat("Sec-WebSocket-Accept: %s\r\n", accept) .. protocol .. "\r\n")
	return nil, header, url
end

local function new_ws(id, mode, read, write, close)
	local ws = {
		id = id,
		mode = mode,
		read = read,
		write = write,
		close = close,
		limit = mode == "server" and MAX_SERVER_MESSAGE or MAX_CLIENT_MESSAGE,
	}
	pool[id] = ws
	return ws
end

-- Runs a server connection until it ends: true, or false and why it could not start.
function M.accept(id, handle, protocol, addr, options)
	protocol = protocol or "ws"
	if protocol ~= "ws" and protocol ~= "wss" then
		error(sformat("invalid websocket protocol:%s", tostring(protocol)))
	end
	if not (options and options.upgrade) then
		if protocol == "wss" then
			-- the host's TLS, started before the socket is (see http.tlshelper)
			local ok, err = pcall(socket.starttls, id, "server")
			if not ok then
				socket.close(id)
				return false, err
			end
		end
		local ok, err = socket.start(id)
		if not ok then
			return false, err
		end
	end
	local ws = new_ws(id, "server", sockethelper.readfunc(id), sockethelper.writefunc(id), function()
		socket.close(id)
	end)
	ws.handle = handle
	ws.addr = addr
	local on_warning = handle and handle.warning
	if on_warning then
		socket.warning(id, function(_, size)
			on_warning(ws, size)
		end)
	end
	local ok, err = xpcall(function()
		call(ws, "connect")
		local code, header, url = read_handshake(ws, options and options.upgrade)
		if code then
			httpd.write_response(ws.write, code, header)
			return
		end
		call(ws, "handshake", header, url)
		while not is_closed(id) do
			local data, op, payload = read_message(ws, function(what)
				call(ws, what)
			end)
			if op == "close" then
				local code_, reason = close_payload(payload)
				pcall(write_frame, ws, "close", payload)
				drop(ws)
				call(ws, "close", code_, reason)
				return
			end
			call(ws, "message", data, op)
		end
	end, debug.traceback)
	local closed = is_closed(id)
	if not closed then
		drop(ws)
	end
	if not ok then
		if tostring(err):find("Socket Error", 1, true) or err == socket_error then
			call(ws, closed and "close" or "error", err)
			return true
		end
		-- a protocol error: the peer broke the rules (the connection is closed)
		call(ws, "error", err)
		return false, err
	end
	return true
end

---------------------------------------------------------------------------------------------
-- client

local function handshake(ws, host, path, header)
	local key = crypt.base64encode(crypt.randomkey() .. crypt.randomkey())
	local request = {
		["Upgrade"] = "websocket",
		["Connection"] = "Upgrade",
		["Sec-WebSocket-Version"] = "13",
		["Sec-WebSocket-Key"] = key,
	}
	for k, v in pairs(header or {}) do
		assert(request[k] == nil, k)
		request[k] = v
	end
	local received = {}
	local code, rest = internal.request(ws, "GET", host, path, received, request)
	if code ~= 101 then
		error(sformat("websocket handshake error: code[%s] info:%s", code, rest))
	end
	prepend(ws, rest)
	if type(received.upgrade) ~= "string" or received.upgrade:lower() ~= "websocket" then
		error "websocket handshake upgrade must websocket"
	end
	if type(received.connection) ~= "string" or received.connection:lower() ~= "upgrade" then
		error "websocket handshake connection must upgrade"
	end
	local accept = received["sec-websocket-accept"]
	if type(accept) ~= "string" or crypt.base64decode(accept) ~= crypt.sha1(key .. GUID) then
		error "websocket handshake invalid Sec-WebSocket-Accept"
	end
end

-- Connects to "ws://host[:port][/path]" and does the handshake: the connection's id.
function M.connect(url, header, timeout)
	local protocol, host, path = url:match "^(wss?)://([^/]+)(.*)$"
	if protocol ~= "ws" and protocol ~= "wss" then
		error(sformat("invalid protocol: %s", tostring(protocol)))
	end
	local address, port = host:match "^%[(.-)%]:?(%d*)$"
	if not address then
		address, port = host:match "^([^:]+):?(%d*)$"
	end
	if not address then
		error("websocket: bad host " .. host)
	end
	port = tonumber(port) or (protocol == "wss" and 443 or 80)
	local name = address
	if not address:find "^%d+%.%d+%.%d+%.%d+$" and not address:find(":", 1, true) then
		address = dns.resolve(address)
	end
	local id = sockethelper.connect(address, port, timeout)
	if protocol == "wss" then
		local ok, err = pcall(socket.starttls, id, "client", name)
		if not ok then
			socket.close(id)
			error(err)
		end
	end
	local ws = new_ws(id, "client", sockethelper.readfunc(id), sockethelper.writefunc(id), function()
		socket.close(id)
	end)
	ws.addr = host
	ws.readall = function()
		return socket.readall(id)
	end
	local ok, err = pcall(handshake, ws, host, path == "" and "/" or path, header)
	if not ok then
		drop(ws)
		error(err)
	end
	return id
end

-- The next message (and its kind, "text" or "binary"); false and the close payload when
-- the peer closed.
function M.read(id)
	local ws = assert(pool[id], "websocket: not an open connection")
	local ok, data, op, payload = pcall(read_message, ws)
	if not ok then
		drop(ws)
		error(data)
	end
	if op == "close" then
		pcall(write_frame, ws, "close", payload)
		drop(ws)
		return false, payload
	end
	return data, op
end

function M.write(id, data, fmt, masking_key)
	local ws = assert(pool[id], "websocket: not an open connection")
	fmt = fmt or "text"
	assert(fmt == "text" or fmt == "binary", "websocket: text or binary")
	write_frame(ws, fmt, data, masking_key)
end

function M.ping(id)
	write_frame(assert(pool[id], "websocket: not an open connection"), "ping")
end

function M.addrinfo(id)
	return assert(pool[id], "websocket: not an open connection").addr
end

function M.real_ip(id)
	return assert(pool[id], "websocket: not an open connection").real_ip
end

-- Sends a close frame (with `code` and `reason` when given) and closes.
function M.close(id, code, reason)
	local ws = pool[id]
	if not ws then
		return
	end
	local payload
	if code then
		payload = spack(">I2", code) .. (reason or "")
	end
	local ok, err = pcall(write_frame, ws, "close", payload)
	drop(ws)
	if not ok then
		skynet.error(err)
	end
end

return M
