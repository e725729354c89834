-- An HTTP server (keep-alive; https with `web_tls`) and a WebSocket echo server on the
-- ports the config gives,
-- for clients written in Rust (protocols.rs).
local skynet = require "skynet"
local socket = require "skynet.socket"
local httpd = require "http.httpd"
local sockethelper = require "http.sockethelper"
local urllib = require "http.url"
local websocket = require "http.websocket"

local function http_connection(fd)
	if skynet.getenv "web_tls" then
		-- https: the host's TLS, started before the socket is
		socket.starttls(fd, "server")
	end
	socket.start(fd)
	local read, write = sockethelper.readfunc(fd), sockethelper.writefunc(fd)
	while true do
		local code, url, method, header, body = httpd.read_request(read, 1024 * 1024)
		if not code then
			break
		end
		if code ~= 200 then
			httpd.write_response(write, code)
			break
		end
		local path, query = urllib.parse(url)
		local q = urllib.parse_query(query)
		local reply = string.format("%s %s %s %s", method, path, q.name or "-", body)
		if path == "/chunked" then
			local n = 0
			httpd.write_response(write, 200, function()
				n = n + 1
				if n <= 3 then
					return "part" .. n .. ";"
				end
			end, { ["content-type"] = "text/plain" })
		else
			httpd.write_response(write, 200, reply, { ["content-type"] = "text/plain", ["x-seen"] = header["user-agent"] and "yes" or "no" })
		end
		if header.connection == "close" then
			break
		end
	end
	socket.close(fd)
end

local echo = {
	message = function(id, data, op)
		websocket.write(id, data, op)
	end,
}

skynet.start(function()
	local http = socket.listen("127.0.0.1", tonumber(skynet.getenv "http_port"))
	socket.start(http, function(fd)
		skynet.fork(http_connection, fd)
	end)
	local ws = socket.listen("127.0.0.1", tonumber(skynet.getenv "ws_port"))
	socket.start(ws, function(fd, addr)
		skynet.fork(websocket.accept, fd, echo, "ws", addr)
	end)
	skynet.error("WEB READY")
end)
