-- http.tlshelper: skynet's TLS helper API over the host's TLS (socket.starttls): the host
-- does the handshake and the encryption, so what a service reads and writes on the socket
-- is plain text and no key ever enters it. Clients trust the system's roots and the node's
-- `tls_ca`; servers present the node's `tls_cert` and `tls_key` (a context's `set_cert` is
-- accepted for skynet's API; the node's files are the ones used). A server must start TLS
-- before it starts the accepted socket: `tls.init_responsefunc(fd, ctx)()` then
-- `socket.start(fd)`.
local socket = require "skynet.socket"
local sockethelper = require "http.sockethelper"

local tls = {}

local ctx_meta = {}
ctx_meta.__index = ctx_meta

function ctx_meta:set_cert(certfile, keyfile)
	self.certfile, self.keyfile = certfile, keyfile
end

function ctx_meta:set_ciphers()
end

function tls.newctx()
	return setmetatable({}, ctx_meta)
end

-- method: "client" (`hostname`: the name the server's certificate must carry) or "server"
function tls.newtls(method, ctx, hostname)
	assert(method == "client" or method == "server", "tls: client or server")
	return { method = method, ctx = ctx, hostname = hostname }
end

-- A function doing a client's handshake on `fd` (for the name given now, or newtls's).
function tls.init_requestfunc(fd, t)
	return function(hostname)
		socket.starttls(fd, "client", hostname or t.hostname)
	end
end

-- A function making `fd` a TLS server (call it before socket.start(fd)).
function tls.init_responsefunc(fd)
	return function()
		socket.starttls(fd, "server")
	end
end

function tls.closefunc()
	return function() end
end

function tls.readfunc(fd)
	return sockethelper.readfunc(fd)
end

function tls.writefunc(fd)
	return sockethelper.writefunc(fd)
end

function tls.readallfunc(fd)
	return function()
		return socket.readall(fd)
	end
end

return tls
