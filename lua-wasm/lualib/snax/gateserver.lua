-- snax.gateserver: skynet's gate framework (skywasm's own implementation, written to the
-- behaviour of skynet's lualib/snax/gateserver.lua). A service built on it listens on one
-- TCP port, frames its clients' bytes into packets with skynet.netpack and hands what
-- happens to a handler:
--
--   handler.connect(fd, addr)    a client was accepted; it is not read until openclient(fd)
--   handler.message(fd, msg, sz) one packet (msg is a Lua string here, sz its length)
--   handler.disconnect(fd)       the client closed, or closeclient's close finished
--   handler.error(fd, reason)    the connection failed (no disconnect follows)
--   handler.warning(fd, kib)     kib KiB wait unsent on fd (0: drained again)
--   handler.open(source, conf)   after "open" started listening; its results are the answer
--   handler.command(cmd, source, ...)  every other "lua" request; its results are the answer
--   handler.embed                true: the caller's skynet.start runs, this adds to it
--
-- The service answers the "lua" requests "open" (conf: address, port, maxclient, nodelay,
-- backlog) and "close" (stop listening).
--
-- It takes over the service's "socket" protocol, so the service cannot use skynet.socket too
-- (as in skynet).

local skynet = require "skynet"
local netpack = require "skynet.netpack"
local driver = require "skynet.socketdriver"

local assert, error, tonumber, tostring, type = assert, error, tonumber, tostring, type
local sformat = string.format

local gateserver = {}

local listen_id -- the listening socket, while listening
local queue -- netpack's
local maxclient
local client_number = 0
local nodelay = false

-- fd -> true while its packets go to handler.message: from the accept until closeclient or
-- the client's close
local connection = {}
-- fd -> true from the accept until its CLOSE or ERROR event: what counts against maxclient.
-- Kept apart from `connection` because a closeclient'd fd still counts until its close is
-- done, and a refused fd never counts.
local clients = {}

-- Starts reading a client: its packets reach handler.message from now on.
function gateserver.openclient(fd)
	if connection[fd] then
		driver.start(fd)
	end
end

-- Closes a client once what was written to it is sent; handler.disconnect follows.
function gateserver.closeclient(fd)
	if connection[fd] then
		connection[fd] = nil
		driver.close(fd)
	end
end

function gateserver.start(handler)
	assert(handler.message, "gateserver: handler.message is required")
	assert(handler.connect, "gateserver: handler.connect is required")

	local CMD = {}

	function CMD.open(source, conf)
		assert(not listen_id, "gateserver: already listening")
		assert(type(conf) == "table", "gateserver: open needs a conf table")
		-- skynet listens on "0.0.0.0" by default; a sandboxed host opens only what it is told
		-- to, so here the default is loopback and a public gate says address = "0.0.0.0"
		local address = conf.address or "127.0.0.1"
		local port = tonumber(conf.port)
		assert(port, "gateserver: conf.port is required (0 picks a free port)")
		maxclient = conf.maxclient or 1024
		nodelay = conf.nodelay
		local id, ip, bound = driver.listen(address, port, conf.backlog)
		if not id then
			error(sformat("gateserver: listen on %s:%s failed: %s", address, tostring(port),
				tostring(ip)))
		end
		listen_id = id
		-- what was bound (port 0 picks one), for handler.open and the caller
		conf.address, conf.port = ip, bound
		skynet.error(sformat("Listen on %s:%d", ip, bound))
		driver.start(id)
		if handler.open then
			return handler.open(source, conf)
		end
		return ip, bound
	end

	function CMD.close()
		assert(listen_id, "gateserver: not listening")
		driver.close(listen_id)
		-- forgotten at once so that open may listen again; the listener's CLOSE event is
		-- then nobody's
		listen_id = nil
	end

	local MSG = {}

	local function dispatch_msg(fd, msg, sz)
		if connection[fd] then
			handler.message(fd, msg, sz)
		else
			skynet.error(sformat("gateserver: drop a %d byte packet from fd %d (not open)", sz, fd))
		end
	end

	MSG.data = dispatch_msg

	-- handler.message may block (a call): the coroutine forked first takes over the rest of the
	-- queue then, so the packets behind a slow one are not held up until the next event. When
	-- nothing blocks, this loop empties the queue and the fork finds nothing to do.
	local function dispatch_queue()
		local fd, msg, sz = netpack.pop(queue)
		if fd == nil then
			return
		end
		skynet.fork(dispatch_queue)
		repeat
			dispatch_msg(fd, msg, sz)
			fd, msg, sz = netpack.pop(queue)
		until fd == nil
	end

	MSG.more = dispatch_queue

	function MSG.open(fd, addr)
		if client_number >= maxclient then
			skynet.error(sformat("gateserver: %d clients already, refuse %s (fd %d)",
				client_number, addr, fd))
			driver.shutdown(fd)
			return
		end
		if nodelay then
			driver.nodelay(fd)
		end
		connection[fd] = true
		clients[fd] = true
		client_number = client_number + 1
		handler.connect(fd, addr)
	end

	-- A CLOSE or ERROR event of fd: whether it was a client of ours, and whether it was still
	-- open (its peer or the network ended it, not closeclient).
	local function client_gone(fd)
		if not clients[fd] then
			-- the old listener after "close", or a client refused at accept
			return false
		end
		clients[fd] = nil
		client_number = client_number - 1
		if connection[fd] then
			connection[fd] = nil
			return true, true
		end
		return true, false
	end

	function MSG.close(fd)
		if fd == listen_id then
			listen_id = nil
			return
		end
		local ours, peer_closed = client_gone(fd)
		if not ours then
			return
		end
		if peer_closed then
			-- skywasm's driver keeps a socket whose peer closed writable until it is closed (skynet's
			-- drops it at once): release it, after what is queued for it is sent
			driver.close(fd)
		end
		if handler.disconnect then
			handler.disconnect(fd)
		end
	end

	function MSG.error(fd, reason)
		if fd == listen_id then
			skynet.error("gateserver: accept error: " .. tostring(reason))
			return
		end
		if not client_gone(fd) then
			return
		end
		-- the driver has dropped a failed socket already; as skynet, make sure
		driver.shutdown(fd)
		if handler.error then
			handler.error(fd, reason)
		end
	end

	function MSG.warning(fd, size)
		if handler.warning then
			handler.warning(fd, size)
		end
	end

	skynet.register_protocol {
		name = "socket",
		id = skynet.PTYPE_SOCKET, -- 6
		unpack = function(msg, sz)
			return netpack.filter(queue, msg, sz)
		end,
		dispatch = function(_, _, q, t, ...)
			queue = q
			if t then
				local f = MSG[t]
				if f then
					f(...)
				end
			end
		end,
	}

	local function init()
		skynet.dispatch("lua", function(_, address, cmd, ...)
			local f = CMD[cmd]
			if f then
				skynet.ret(skynet.pack(f(address, ...)))
			elseif handler.command then
				skynet.ret(skynet.pack(handler.command(cmd, address, ...)))
			else
				error(sformat("gateserver: unknown command %s", tostring(cmd)))
			end
		end)
	end

	if handler.embed then
		init()
	else
		skynet.start(init)
	end
end

return gateserver
