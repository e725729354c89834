-- http.httpc: an HTTP/1.1 client (skynet's API):
--
--   httpc.timeout = 100                  -- centiseconds, for connect and the whole request
--   local code, body = httpc.get("http://host:port", "/path", recvheader, header)
--   httpc.request(method, host, url, recvheader, header, content)
--   httpc.post(host, url, form, recvheader), httpc.head(host, url, recvheader, header)
--   for part, stream in httpc.request_stream(method, host, url, ...) do ... end
--
-- `host` is [scheme://]host[:port]: a name, an IPv4 address or a bracketed IPv6 one. Names
-- are looked up through skynet.dns (the host's resolver, asynchronously). https goes
-- through the host's TLS (http.tlshelper).
local skynet = require "skynet"
local socket = require "http.sockethelper"
local internal = require "http.internal"
local dns = require "skynet.dns"

local sformat = string.format

local httpc = {}

-- Accepted for skynet's API (lookups always go through skynet.dns).
function httpc.dns(server, port)
	dns.server(server, port)
end

local default_port = { http = 80, https = 443 }

local function is_ipv4(host)
	return host:find "^%d+%.%d+%.%d+%.%d+$" ~= nil
end

-- "host", "host:port", "[v6]" or "[v6]:port" -> host, port (or nil), kind
local function parse_host(host)
	local colon = host:find(":", 1, true)
	if not colon then
		return host, nil, is_ipv4(host) and "ipv4" or "hostname"
	end
	if host:find(":", colon + 1, true) then
		local v6, port = host:match "^%[(.-)%]:?(%d*)$"
		if v6 then
			return v6, tonumber(port), "ipv6"
		end
		error(sformat("Invalid host: bare IPv6 address '%s', use '[%s]' instead", host, host))
	end
	local h, port = host:match "^(.-):(%d+)$"
	if h then
		return h, tonumber(port), is_ipv4(h) and "ipv4" or "hostname"
	end
	return host, nil, "hostname"
end

local function parse_url(host)
	local scheme, rest = host:match "^(%a+)://(.*)"
	if scheme then
		scheme = scheme:lower()
	else
		scheme, rest = "http", host
	end
	local hostname, port, kind = parse_host(rest)
	port = port or default_port[scheme]
	if not port then
		error("Invalid protocol: " .. scheme)
	end
	return scheme, hostname, port, kind, rest
end

local client_ctx
local function interface_of(scheme, fd, hostname)
	if scheme == "http" then
		return {
			read = socket.readfunc(fd),
			write = socket.writefunc(fd),
			readall = function()
				return socket.readall(fd)
			end,
		}
	end
	local tls = require "http.tlshelper"
	client_ctx = client_ctx or tls.newctx()
	local ctx = tls.newtls("client", client_ctx, hostname)
	return {
		init = tls.init_requestfunc(fd, ctx),
		close = tls.closefunc(ctx),
		read = tls.readfunc(fd, ctx),
		write = tls.writefunc(fd, ctx),
		readall = tls.readallfunc(fd, ctx),
	}
end

local function connect(host, timeout)
	local scheme, hostname, port, kind, hostheader = parse_url(host)
	local address = hostname
	if kind == "hostname" then
		local ok, ip = pcall(dns.resolve, hostname)
		if not ok or not ip then
			-- as a connect to a name that does not resolve fails in skynet
			error(socket.socket_error(sformat("connect failed host = %s port = %s err = dns: %s",
				hostname, port, tostring(ip))))
		end
		address = ip
	end
	local fd = socket.connect(address, port, timeout)
	-- (a certificate names the host as it was written: a name, or an address)
	local ok, interface = pcall(interface_of, scheme, fd, hostname)
	if not ok then
		socket.close(fd)
		error(interface)
	end
	if timeout then
		skynet.timeout(timeout, function()
			if not interface.finish then
				-- the request took too long: its reads and writes fail from now on
				socket.shutdown(fd)
			end
		end)
	end
	if interface.init then
		local done, err = pcall(interface.init, hostname)
		if not done then
			interface.finish = true
			socket.close(fd)
			error(err)
		end
	end
	return fd, interface, hostheader
end

local function finish(interface, fd)
	interface.finish = true
	socket.close(fd)
	if interface.close then
		interface.close()
		interface.close = nil
	end
end

function httpc.request(method, host, url, recvheader, header, content)
	local fd, interface, hostheader = connect(host, httpc.timeout)
	local ok, code, body, h = pcall(internal.request, interface, method, hostheader, url, recvheader, header, content)
	if ok then
		ok, body = pcall(internal.response, interface, code, body, h)
	end
	finish(interface, fd)
	if ok then
		return code, body
	end
	error(body or code)
end

function httpc.head(host, url, recvheader, header, content)
	local fd, interface, hostheader = connect(host, httpc.timeout)
	local ok, code = pcall(internal.request, interface, "HEAD", hostheader, url, recvheader, header, content)
	finish(interface, fd)
	if ok then
		return code
	end
	error(code)
end

-- A stream of the response: `stream.status`, `stream.header`; call it for the next part
-- of the body (a generic for does); `stream:close()` (or to-be-closed) ends it.
function httpc.request_stream(method, host, url, recvheader, header, content)
	local fd, interface, hostheader = connect(host, httpc.timeout)
	local ok, code, body, h = pcall(internal.request, interface, method, hostheader, url, recvheader, header, content)
	interface.finish = true -- the timeout covers the request, not the stream
	local function close()
		finish(interface, fd)
	end
	if not ok then
		close()
		error(code)
	end
	local stream = internal.response_stream(interface, code, body, h)
	stream._onclose = close
	return stream
end

function httpc.get(...)
	return httpc.request("GET", ...)
end

local function percent(c)
	return sformat("%%%02X", c:byte())
end

local function escape(s)
	return (tostring(s):gsub("([^A-Za-z0-9_])", percent))
end

-- POSTs `form` (a table) as application/x-www-form-urlencoded.
function httpc.post(host, url, form, recvheader)
	local body = {}
	for k, v in pairs(form) do
		body[#body + 1] = escape(k) .. "=" .. escape(v)
	end
	local header = { ["content-type"] = "application/x-www-form-urlencoded" }
	return httpc.request("POST", host, url, recvheader, header, table.concat(body, "&"))
end

return httpc
