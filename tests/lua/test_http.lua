-- http.httpd, http.httpc, http.url and skynet.dns: a server and its clients in one service,
-- and raw sockets for what a well-behaved client never sends.
local skynet = require "skynet"
local socket = require "skynet.socket"
local httpd = require "http.httpd"
local httpc = require "http.httpc"
local sockethelper = require "http.sockethelper"
local urllib = require "http.url"
local dns = require "skynet.dns"
local check = require "check"

local served = 0

-- one connection: requests until the client closes (keep-alive), as a game's GM port would
local function serve(fd)
	socket.start(fd)
	local read, write = sockethelper.readfunc(fd), sockethelper.writefunc(fd)
	while true do
		local code, url, method, header, body = httpd.read_request(read, 2 * 1024 * 1024)
		if not code then
			break -- the connection closed or failed
		end
		served = served + 1
		if code ~= 200 then
			httpd.write_response(write, code, "refused " .. code)
			break
		end
		local path, query = urllib.parse(url)
		local q = urllib.parse_query(query)
		if path == "/echo" then
			httpd.write_response(write, 200, method .. " " .. body, { ["x-query"] = q.k or "" })
		elseif path == "/chunked" then
			local parts = { "a", "", "bc", string.rep("d", 5000) }
			local i = 0
			httpd.write_response(write, 200, function()
				i = i + 1
				return parts[i]
			end)
		elseif path == "/big" then
			httpd.write_response(write, 200, string.rep("x", 1024 * 1024))
		elseif path == "/headers" then
			httpd.write_response(write, 200, header["x-one"] .. "|" .. table.concat(header["x-two"], ","),
				{ ["set-cookie"] = { "a=1", "b=2" } })
		else
			httpd.write_response(write, 404, "no " .. path)
		end
		if header.connection == "close" then
			break
		end
	end
	socket.close(fd)
end

local function raw(port, text)
	local fd = assert(socket.open("127.0.0.1", port))
	socket.write(fd, text)
	local reply = socket.readall(fd)
	socket.close(fd)
	return reply
end

skynet.start(function()
	local listener, _, port = socket.listen("127.0.0.1", 0)
	socket.start(listener, function(fd)
		skynet.fork(serve, fd)
	end)
	local base = "127.0.0.1:" .. port
	httpc.timeout = 500

	-- url
	local path, query = urllib.parse "/get%20it?k1=1&k2=2&k4=a%20space&k5=b+space&k5=b%20space&k5=c"
	check.eq("url.parse decodes the path", path, "/get it")
	local q = urllib.parse_query(query)
	check.eq("parse_query", q.k4, "a space")
	check.eq("repeated names collect", #q.k5 .. q.k5[1] .. q.k5[3], "3b spacec")

	-- httpc against httpd
	local header = {}
	local code, body = httpc.get(base, "/echo?k=v", header)
	check.eq("GET", code .. " " .. body, "200 GET ")
	check.eq("response header", header["x-query"], "v")
	code, body = httpc.post("http://" .. base, "/echo", { a = "1 2" })
	check.eq("POST a form", body, "POST a=1%202")
	code, body = httpc.request("PUT", base, "/echo", nil, { ["content-type"] = "text/plain" }, "payload")
	check.eq("a body", body, "PUT payload")
	code, body = httpc.get(base, "/chunked")
	check.eq("a chunked response", body, "abc" .. string.rep("d", 5000))
	code, body = httpc.get(base, "/big")
	check.eq("a megabyte body", #body, 1024 * 1024)
	local recv = {}
	code, body = httpc.get(base, "/headers", recv, { ["x-one"] = "1", ["x-two"] = { "2", "3" } })
	check.eq("repeated request headers", body, "1|2,3")
	check.eq("repeated response headers", type(recv["set-cookie"]) == "table" and #recv["set-cookie"], 2)
	code, body = httpc.get(base, "/nowhere")
	check.eq("404", code .. " " .. body, "404 no /nowhere")
	check.eq("HEAD", httpc.head(base, "/echo"), 200)
	local parts = {}
	for part, stream in httpc.request_stream("GET", base, "/chunked") do
		check.eq("a stream's status", stream.status, 200)
		parts[#parts + 1] = part
	end
	check.eq("a streamed body", table.concat(parts), "abc" .. string.rep("d", 5000))
	local chunked_up = raw(port, "POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")
	check.ok("a chunked request body", chunked_up:find("POST abcde", 1, true) ~= nil, chunked_up)

	-- bad requests: refused with a status, never waiting for more than the limits
	local long = raw(port, "GET / HTTP/1.1\r\nx-long: " .. string.rep("a", 10000) .. "\r\n\r\n")
	check.ok("a header over 8 KiB: 413", long:find "^HTTP/1.1 413" ~= nil, long:sub(1, 40))
	local bad = raw(port, "NOT A REQUEST\r\n\r\n")
	check.ok("a malformed request line: 400", bad:find "^HTTP/1.1 400" ~= nil, bad:sub(1, 40))
	local old = raw(port, "GET / HTTP/2.0\r\n\r\n")
	check.ok("another HTTP version: 505", old:find "^HTTP/1.1 505" ~= nil, old:sub(1, 40))
	local huge = raw(port, "POST /echo HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n")
	check.ok("a body over the limit: 413", huge:find "^HTTP/1.1 413" ~= nil, huge:sub(1, 40))
	local badchunk = raw(port, "POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")
	check.ok("a bad chunk size: 413", badchunk:find "^HTTP/1.1 413" ~= nil, badchunk:sub(1, 40))
	-- a slowloris client holds its own connection only
	local slow = assert(socket.open("127.0.0.1", port))
	socket.write(slow, "GET /echo HTTP/1.1\r\nx-slow: ")
	code = httpc.get(base, "/echo")
	check.eq("other clients are served meanwhile", code, 200)
	socket.close(slow)

	-- a server that closes mid-reply
	local half, _, half_port = socket.listen("127.0.0.1", 0)
	socket.start(half, function(fd)
		skynet.fork(function()
			socket.start(fd)
			socket.readline(fd, "\r\n\r\n")
			socket.write(fd, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
			socket.close(fd)
		end)
	end)
	check.raises("a reply cut short raises", "Socket Error", httpc.get, "127.0.0.1:" .. half_port, "/")
	socket.close(half)
	-- a server that never answers: the timeout ends the request
	local mute, _, mute_port = socket.listen("127.0.0.1", 0)
	socket.start(mute, function(fd) socket.start(fd) end)
	httpc.timeout = 20
	check.raises("a silent server times out", "Socket Error", httpc.get, "127.0.0.1:" .. mute_port, "/")
	httpc.timeout = 500
	socket.close(mute)

	-- dns
	check.eq("localhost", dns.resolve "localhost", "127.0.0.1")
	local ip, ips = dns.resolve "game.test"
	check.eq("a name pinned in dns_hosts", ip .. " " .. #ips, "127.0.0.1 1")
	code, body = httpc.get("http://game.test:" .. port, "/echo")
	check.eq("httpc looks names up", code, 200)
	check.raises("an unknown name raises", "nothing.invalid", dns.resolve, "nothing.invalid")
	check.raises("what is not a name", "not a host name", dns.resolve, "bad name!")
	check.eq("an address is itself", dns.resolve "10.1.2.3", "10.1.2.3")
	check.raises("a bare IPv6 host is refused", "bare IPv6", httpc.get, "::1", "/")
	check.ok("the server counted its requests", served >= 12, served)
	check.done()
end)
