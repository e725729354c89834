-- TLS done by the host: https and wss servers with the node's certificate, clients that
-- verify it against the node's tls_ca, and what must fail: a wrong name, a plain client on
-- a TLS port, a TLS client on a plain port.
local skynet = require "skynet"
local socket = require "skynet.socket"
local httpd = require "http.httpd"
local httpc = require "http.httpc"
local sockethelper = require "http.sockethelper"
local tlshelper = require "http.tlshelper"
local websocket = require "http.websocket"
local check = require "check"

local function https_connection(fd)
	tlshelper.init_responsefunc(fd)()
	socket.start(fd)
	local read, write = sockethelper.readfunc(fd), sockethelper.writefunc(fd)
	while true do
		local code, url, method, header, body = httpd.read_request(read, 4 * 1024 * 1024)
		if not code then
			break
		end
		if code ~= 200 then
			httpd.write_response(write, code)
			break
		end
		if url == "/big" then
			httpd.write_response(write, 200, string.rep("z", 1024 * 1024))
		else
			httpd.write_response(write, 200, "secure " .. method .. " " .. url .. " " .. #body)
		end
		if header.connection == "close" then
			break
		end
	end
	socket.close(fd)
end

skynet.start(function()
	local listener, _, port = socket.listen("127.0.0.1", 0)
	socket.start(listener, function(fd)
		skynet.fork(https_connection, fd)
	end)
	httpc.timeout = 500
	local code, body = httpc.get("https://game.test:" .. port, "/x")
	check.eq("an https GET", code .. " " .. body, "200 secure GET /x 0")
	code, body = httpc.get("https://127.0.0.1:" .. port, "/ip")
	check.eq("to an address the certificate names", body, "secure GET /ip 0")
	local upload = string.rep("u", 2 * 1024 * 1024)
	code, body = httpc.request("POST", "https://game.test:" .. port, "/up", nil, nil, upload)
	check.eq("2 MiB up", body, "secure POST /up " .. #upload)
	code, body = httpc.get("https://game.test:" .. port, "/big")
	check.eq("1 MiB down", #body, 1024 * 1024)
	check.raises("a name the certificate does not carry", "tls handshake with other.test failed",
		httpc.get, "https://other.test:" .. port, "/")
	-- a plain client on the TLS port: its request is no handshake; the server goes on
	local fd = assert(socket.open("127.0.0.1", port))
	socket.write(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	local garbage = socket.readall(fd)
	socket.close(fd)
	check.ok("a plain request gets no page", not garbage:find("secure", 1, true), garbage)
	code = httpc.get("https://game.test:" .. port, "/after")
	check.eq("the server still serves", code, 200)

	-- a TLS client on a plain port
	local plain, _, plain_port = socket.listen("127.0.0.1", 0)
	socket.start(plain, function(pfd)
		skynet.fork(function()
			socket.start(pfd)
			socket.write(pfd, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno")
			socket.readall(pfd)
			socket.close(pfd)
		end)
	end)
	check.raises("a TLS client on a plain server", "tls handshake", httpc.get, "https://game.test:" .. plain_port, "/")

	-- wss
	local wss, _, wss_port = socket.listen("127.0.0.1", 0)
	socket.start(wss, function(wfd, addr)
		skynet.fork(websocket.accept, wfd, {
			message = function(id, data, op)
				websocket.write(id, "wss:" .. data, op)
			end,
		}, "wss", addr)
	end)
	local ws = websocket.connect("wss://game.test:" .. wss_port .. "/chat")
	websocket.write(ws, "hello")
	check.eq("a wss message echoed", websocket.read(ws), "wss:hello")
	websocket.close(ws)
	check.done()
end)
