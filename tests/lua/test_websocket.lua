-- http.websocket: a server and a client in one service, and raw frames for what a
-- well-behaved peer never sends.
local skynet = require "skynet"
local socket = require "skynet.socket"
local websocket = require "http.websocket"
local check = require "check"

local events = {}
local function log(...)
	events[#events + 1] = table.concat({ ... }, " ")
end

local handle = {
	connect = function(id) log("connect") end,
	handshake = function(id, header, url) log("handshake", url, header["x-token"] or "") end,
	message = function(id, data, op)
		if data == "close me" then
			websocket.close(id, 4000, "bye")
		else
			websocket.write(id, data:upper(), op)
		end
	end,
	ping = function(id) log("ping") end,
	pong = function(id) log("pong") end,
	close = function(id, code, reason) log("close", tostring(code), tostring(reason)) end,
	error = function(id, err) log("error", tostring(err):match "websocket: [^\n]*" or tostring(err)) end,
}

local function frame(b1, payload, masked)
	local len = #payload
	local head
	if len < 126 then
		head = string.pack("BB", b1, (masked and 0x80 or 0) | len)
	else
		head = string.pack(">BBI2", b1, (masked and 0x80 or 0) | 126, len)
	end
	if masked then
		local key = "\1\2\3\4"
		local crypt = require "skynet.crypt"
		return head .. key .. crypt.xor_str(payload, key)
	end
	return head .. payload
end

local UPGRADE = "GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	.. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

-- a raw client: the handshake, then `bytes`; what the server sent back, until it closes
local function raw(port, bytes, request)
	local fd = assert(socket.open("127.0.0.1", port))
	socket.write(fd, (request or UPGRADE) .. (bytes or ""))
	local reply = socket.readall(fd)
	socket.close(fd)
	return reply
end

skynet.start(function()
	local listener, _, port = socket.listen("127.0.0.1", 0)
	socket.start(listener, function(fd, addr)
		skynet.fork(websocket.accept, fd, handle, "ws", addr)
	end)
	local url = "ws://127.0.0.1:" .. port

	local id = websocket.connect(url .. "/chat?room=1", { ["x-token"] = "t1" })
	websocket.write(id, "hello")
	check.eq("a text message echoed", websocket.read(id), "HELLO")
	websocket.write(id, "bin\0ary", "binary")
	local data, op = websocket.read(id)
	check.eq("a binary message", data .. " " .. op, "BIN\0ARY binary")
	local big = string.rep("a", 200 * 1024)
	websocket.write(id, big)
	check.eq("a 200 KiB message", websocket.read(id), big:upper())
	websocket.ping(id)
	websocket.write(id, "after ping")
	check.eq("a ping is answered and the stream goes on", websocket.read(id), "AFTER PING")
	check.eq("addrinfo", websocket.addrinfo(id), "127.0.0.1:" .. port)
	websocket.write(id, "close me")
	local closed, payload = websocket.read(id)
	check.eq("the server closes with a code and reason", closed, false)
	check.eq("its payload", string.unpack(">I2", payload) .. payload:sub(3), "4000bye")
	check.eq("the client is closed", websocket.is_close(id), true)
	check.ok("the server saw the handshake with its url and header",
		table.concat(events, "|"):find("handshake /chat?room=1 t1", 1, true) ~= nil, table.concat(events, "|"))
	check.ok("and the ping", table.concat(events, "|"):find("ping", 1, true) ~= nil)

	-- raw frames: fragmented, unmasked, control frames in between
	local reply = raw(port, frame(0x01, "frag", true) .. frame(0x89, "p", true) .. frame(0x80, "ment", true)
		.. frame(0x88, string.pack(">I2", 1000), true))
	check.ok("a fragmented message is joined", reply:find("FRAGMENT", 1, true) ~= nil, reply)
	check.ok("a ping in the middle is answered", reply:find("\x8a\x01p", 1, true) ~= nil)
	check.ok("a close is answered with a close", reply:find("\x88\x02\x03\xe8", 1, true) ~= nil)
	reply = raw(port, frame(0x81, "plain", false) .. frame(0x88, "", false))
	check.ok("unmasked frames are taken (skynet's clients send them)", reply:find("PLAIN", 1, true) ~= nil, reply)

	-- what breaks the protocol ends that connection only
	local before = #events
	raw(port, frame(0xC1, "rsv", true))
	raw(port, frame(0x83, "op", true))
	raw(port, string.pack(">BBI8", 0x82, 0xff, 1 << 40) .. "\1\2\3\4")
	raw(port, frame(0x09, "fragmented ping", true))
	local errors = {}
	for i = before + 1, #events do
		if events[i]:find "^error" then
			errors[#errors + 1] = events[i]
		end
	end
	check.eq("four protocol errors", #errors, 4)
	check.ok("reserved bits", errors[1]:find "reserved bits" ~= nil, errors[1])
	check.ok("an unknown opcode", errors[2]:find "unknown opcode" ~= nil, errors[2])
	check.ok("a frame over the limit", errors[3]:find "over the limit" ~= nil, errors[3])
	check.ok("a fragmented control frame", errors[4]:find "must be whole" ~= nil, errors[4])

	-- handshakes refused
	local no_upgrade = raw(port, nil, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	check.ok("no Upgrade: 426", no_upgrade:find "^HTTP/1.1 426" ~= nil, no_upgrade:sub(1, 30))
	local no_key = raw(port, nil, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
	check.ok("no key: 400", no_key:find "^HTTP/1.1 400" ~= nil, no_key:sub(1, 30))
	local post = raw(port, nil, "POST / HTTP/1.1\r\nHost: x\r\n\r\n")
	check.ok("not a GET: 400", post:find "^HTTP/1.1 400" ~= nil, post:sub(1, 30))

	-- a client refused by a plain HTTP server
	local http, _, http_port = socket.listen("127.0.0.1", 0)
	socket.start(http, function(fd)
		skynet.fork(function()
			socket.start(fd)
			socket.readline(fd, "\r\n\r\n")
			socket.write(fd, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
			socket.close(fd)
		end)
	end)
	check.raises("a handshake answered 404", "websocket handshake error: code[404]", websocket.connect,
		"ws://127.0.0.1:" .. http_port)
	check.done()
end)
