-- skynet.socket: skynet's TCP socket API (skywasm's own implementation, written to the
-- behaviour of skynet's lualib/skynet/socket.lua). The host side is `skynet.socketdriver`;
-- it reports what happens on a socket as PTYPE_SOCKET messages to the socket's owner, and
-- this module turns them into blocking reads for the coroutines of the service.
--
-- skynet keeps received data in a C buffer (driver.push/pop/readline); here it is a list of
-- Lua strings, since the driver hands every DATA event over as a string already.

local driver = require "skynet.socketdriver"
local skynet = require "skynet"

local assert, error, type, tostring, tonumber, pairs, pcall =
	assert, error, type, tostring, tonumber, pairs, pcall
local ssub, sfind, smatch, sformat, sbyte =
	string.sub, string.find, string.match, string.format, string.byte
local tconcat = table.concat
local coroutine_running = coroutine.running
local math_tointeger = math.tointeger

-- A socket nobody is reading from is paused once this many bytes wait in its buffer, so a
-- fast peer cannot fill the service's memory; the next read that needs more resumes it.
local BUFFER_LIMIT = 128 * 1024
-- skynet's driver default when listen is given no backlog
local DEFAULT_BACKLOG = 32

local socket = {} -- api

---------------------------------------------------------------------------------------------
-- read buffer: the strings of DATA events in arrival order, b[h] .. b[t]; b.off is the index
-- in b[h] of the first unread byte, b.size the number of unread bytes. Reads take whole
-- strings where they can, so a packet read as it arrived is not copied.

local function buffer_new()
	return { h = 1, t = 0, off = 1, size = 0 }
end

local function buffer_push(b, data)
	local t = b.t + 1
	b[t] = data
	b.t = t
	local size = b.size + #data
	b.size = size
	return size
end

local function buffer_reset(b)
	for i = b.h, b.t do
		b[i] = nil
	end
	-- start the indices over, so a buffer that empties now and then keeps small keys
	b.h, b.t, b.off, b.size = 1, 0, 1, 0
end

-- Everything buffered, as one string ("" when empty).
local function buffer_readall(b)
	local h, t = b.h, b.t
	if h > t then
		return ""
	end
	local off = b.off
	local ret
	if h == t then
		ret = b[h]
		if off > 1 then
			ret = ssub(ret, off)
		end
	else
		if off > 1 then
			b[h] = ssub(b[h], off)
		end
		ret = tconcat(b, "", h, t)
	end
	buffer_reset(b)
	return ret
end

-- The first n bytes (n >= 1), or nil while fewer are buffered.
local function buffer_pop(b, n)
	local size = b.size
	if n > size then
		return nil
	end
	if n == size then
		return buffer_readall(b)
	end
	b.size = size - n
	local h, off = b.h, b.off
	local c = b[h]
	local avail = #c - off + 1
	if n < avail then
		-- within the first string: the common case of a header or a short read
		b.off = off + n
		return ssub(c, off, off + n - 1)
	end
	-- n < size: the bytes run on into later strings, and some are left after them
	local parts, np = {}, 0
	while n >= avail do
		np = np + 1
		parts[np] = off == 1 and c or ssub(c, off)
		b[h] = nil
		h = h + 1
		off = 1
		n = n - avail
		c = b[h]
		avail = #c
	end
	if n > 0 then
		np = np + 1
		parts[np] = ssub(c, 1, n)
		off = n + 1
	end
	b.h, b.off = h, off
	return np == 1 and parts[1] or tconcat(parts, "", 1, np)
end

-- Length of the text before the first `sep`, or nil when no whole `sep` is buffered. A
-- separator may span strings: `carry` holds the last #sep-1 bytes before the string being
-- searched, and carry..(its first #sep-1 bytes) is searched first, for a match that starts
-- before it and ends in it. Every match has the same length, so the first found is the
-- earliest.
local function buffer_findline(b, sep)
	local seplen = #sep
	if b.size < seplen then
		return nil
	end
	local keep = seplen - 1
	local base = 0 -- bytes of the buffer before the string being searched
	local carry = ""
	local h = b.h
	for i = h, b.t do
		local c = b[i]
		local start = i == h and b.off or 1
		if keep > 0 and carry ~= "" then
			local p = sfind(carry .. ssub(c, start, start + keep - 1), sep, 1, true)
			if p then
				return base - #carry + p - 1
			end
		end
		local p = sfind(c, sep, start, true)
		if p then
			return base + p - start
		end
		local len = #c - start + 1
		base = base + len
		if keep > 0 then
			if len >= keep then
				carry = ssub(c, -keep)
			else
				carry = ssub(carry .. ssub(c, start), -keep)
			end
		end
	end
	return nil
end

-- The text before the first `sep` (consuming the separator too), or nil.
local function buffer_readline(b, sep)
	local n = buffer_findline(b, sep)
	if n == nil then
		return nil
	end
	local line = n > 0 and buffer_pop(b, n) or ""
	buffer_pop(b, #sep)
	return line
end

---------------------------------------------------------------------------------------------
-- socket objects

-- id -> socket object. When the service's Lua state goes away, close what it still holds
-- (pcall: the driver may already be gone at that point).
local socket_pool = setmetatable({}, {
	__gc = function(p)
		for id in pairs(p) do
			pcall(driver.close, id)
			p[id] = nil
		end
	end,
})

-- id -> callback run once when the socket's CLOSE event arrives
local socket_onclose = {}

-- event type -> handler(id, ud, data)
local socket_message = {}

local function wakeup(s)
	local co = s.co
	if co then
		s.co = nil
		skynet.wakeup(co)
	end
end

local function pause_socket(s, size)
	-- nil: reading; true: paused; false: closing, never pause or resume again
	if s.pause ~= nil then
		return
	end
	if size then
		skynet.error(sformat("Pause socket (%d) size : %d", s.id, size))
	else
		skynet.error(sformat("Pause socket (%d)", s.id))
	end
	driver.pause(s.id)
	s.pause = true
end

-- Blocks the running coroutine until an event about `s` wakes it. skynet allows one waiter
-- per socket: the events wake "the" reader, and two readers would split the data at random.
local function suspend(s)
	assert(not s.co, "skynet.socket: only one coroutine may wait on a socket")
	local co = coroutine_running()
	s.co = co
	if s.pause then
		-- someone wants data: start reading again. Clear the flag first, so that data
		-- arriving for this very read may pause the socket again.
		skynet.error(sformat("Resume socket (%d)", s.id))
		s.pause = nil
		driver.start(s.id)
	end
	skynet.wait(co)
	-- socket.close, called while we were waiting, waits for us to finish with the buffer
	local closing = s.closing
	if closing then
		s.closing = nil
		skynet.wakeup(closing)
	end
end

-- suspend with a read requirement, which the DATA handler checks before waking us:
-- a byte count, a line separator, 0 (any data) or true (only the close wakes).
local function wait_for(s, required)
	assert(not s.read_required, "skynet.socket: only one coroutine may read a socket")
	s.read_required = required
	suspend(s)
	-- woken by a close or an error the requirement is still set: clear it for the next read
	s.read_required = nil
end

---------------------------------------------------------------------------------------------
-- events (skynet_socket.h's SKYNET_SOCKET_TYPE_*)

-- DATA = 1: ud is #data
socket_message[1] = function(id, _, data)
	local s = socket_pool[id]
	if s == nil then
		skynet.error("socket: drop package from " .. id)
		return
	end
	local b = s.buffer
	if b == nil then
		-- a listening socket has no reader (start was given an accept callback)
		skynet.error(sformat("socket: drop package from %d (not a stream socket here)", id))
		return
	end
	if data == nil or data == "" then
		return
	end
	local sz = buffer_push(b, data)
	local rr = s.read_required
	local rrt = type(rr)
	if rrt == "number" then
		-- a read of rr bytes (0: any) is waiting. As in skynet, the buffer limit does not
		-- apply here: the reader asked for this much.
		if sz >= rr then
			s.read_required = nil
			if sz > BUFFER_LIMIT then
				pause_socket(s, sz)
			end
			wakeup(s)
		end
		return
	end
	local limit = s.buffer_limit
	if limit and sz > limit then
		-- skynet closes the socket (keeping what is buffered: a reader gets false + the rest)
		if not s.overflow then
			s.overflow = true
			skynet.error(sformat("socket buffer overflow: fd=%d size=%d", id, sz))
			driver.close(id)
		end
		return
	end
	if rrt == "string" then
		-- a readline is waiting
		if buffer_findline(b, rr) then
			s.read_required = nil
			if sz > BUFFER_LIMIT then
				pause_socket(s, sz)
			end
			wakeup(s)
		end
	elseif rr ~= true and sz > BUFFER_LIMIT then
		-- nobody is reading. (A readall, rr == true, waits for the close, which a paused
		-- socket would never see: keep reading for it.)
		pause_socket(s, sz)
	end
end

-- CONNECT = 2: a connect finished, or a start took effect; data is the peer's "ip:port"
socket_message[2] = function(id, _, addr)
	local s = socket_pool[id]
	-- only connect() waits for this; a resume of a started socket may report it again
	if s == nil or s.connecting ~= true or s.connected then
		return
	end
	s.connected = true
	s.addr = addr
	wakeup(s)
end

-- CLOSE = 3: the peer closed (the socket stays writable until socket.close), or our close
-- finished
socket_message[3] = function(id)
	local s = socket_pool[id]
	if s then
		s.connected = false
		wakeup(s)
	else
		-- nobody here knows the socket any more: release it (as skynet does)
		driver.close(id)
	end
	local cb = socket_onclose[id]
	if cb then
		socket_onclose[id] = nil -- before the call: cb may register a new one
		cb(id)
	end
end

-- ACCEPT = 4: id is the listening socket, ud the new socket, data the client's "ip:port"
socket_message[4] = function(id, newid, addr)
	local s = socket_pool[id]
	if s == nil or s.callback == nil then
		-- no one here accepts on it: don't leave the connection hanging
		skynet.error(sformat("socket: accept on unknown listener %d, close %d", id, newid))
		driver.close(newid)
		return
	end
	s.callback(newid, addr)
end

-- ERROR = 5: data is the reason
-- lookups waiting for their RESOLVE event, by id (an ERROR ends one too)
local resolving = {}

socket_message[5] = function(id, _, err)
	err = err or "socket error"
	local r = resolving[id]
	if r then
		resolving[id] = nil
		r.failed, r.text = true, err
		skynet.wakeup(r)
		return
	end
	local s = socket_pool[id]
	if s == nil then
		driver.shutdown(id)
		skynet.error("socket: error on unknown", id, err)
		return
	end
	if s.callback then
		-- a failed accept does not stop a listening socket, nor a failed datagram a UDP one
		skynet.error("socket: error on socket " .. id .. ":", err)
		return
	end
	if s.connected then
		skynet.error("socket: error on", id, err)
	elseif s.connecting then
		s.connecting = err -- connect() returns it
	end
	s.connected = false
	driver.shutdown(id)
	wakeup(s)
end


local function default_warning(id, size)
	if socket_pool[id] then
		skynet.error(sformat("WARNING: %d K bytes need to send out (fd = %d)", size, id))
	end
end

-- WARNING = 7: ud is the unsent kilobytes
socket_message[7] = function(id, size)
	local s = socket_pool[id]
	if s then
		local warning = s.on_warning or default_warning
		warning(id, size)
	end
end

skynet.register_protocol {
	name = "socket",
	id = skynet.PTYPE_SOCKET, -- 6
	unpack = driver.unpack,
	dispatch = function(_, _, t, ...)
		local f = socket_message[t]
		if f then
			f(...)
		else
			skynet.error("socket: unknown event type " .. tostring(t))
		end
	end,
}

---------------------------------------------------------------------------------------------
-- opening

-- "host:port" or "[ipv6]:port" -> host, port
local function split_address(addr)
	if type(addr) ~= "string" then
		return nil
	end
	local host, port = smatch(addr, "^%[(.*)%]:(%d+)$")
	if host == nil then
		host, port = smatch(addr, "^(.*):(%d+)$")
	end
	if host == nil then
		return nil
	end
	return host, tonumber(port)
end

local function check_unused(id)
	assert(not socket_onclose[id], "socket has onclose callback")
	local s = socket_pool[id]
	if s and not s.listen then
		error("socket is not closed", 3)
	end
end

-- Waits until the driver reports stream socket `id` connected (id) or failed (nil, reason).
local function connect(id)
	check_unused(id)
	local s = {
		id = id,
		buffer = buffer_new(),
		connected = false,
		connecting = true, -- the ERROR handler replaces it with the reason
		read_required = false,
		co = false,
		protocol = "TCP",
	}
	socket_pool[id] = s
	suspend(s)
	local err = s.connecting
	s.connecting = nil
	if s.connected then
		return id
	end
	if socket_pool[id] == s then
		socket_pool[id] = nil
	end
	if type(err) ~= "string" then
		err = "socket closed" -- closed or abandoned before it connected
	end
	return nil, err
end

function socket.open(addr, port)
	if port == nil then
		local host, p = split_address(addr)
		if host == nil then
			return nil, "invalid address " .. tostring(addr)
		end
		addr, port = host, p
	end
	local id, err = driver.connect(addr, tonumber(port) or port)
	if not id then
		return nil, err
	end
	return connect(id)
end

-- Makes this service the owner of `id`. With `func` the socket is a listening one and
-- func(newid, "ip:port") runs for each connection accepted (the new socket is not read until
-- someone starts it); without, it is a stream socket and start waits until it is connected.
function socket.start(id, func)
	local s = socket_pool[id]
	if func == nil and s and s.listen then
		error(sformat("socket.start: listening socket %d needs an accept callback", id), 2)
	end
	check_unused(id)
	local ok, err = driver.start(id)
	if not ok then
		return nil, err or "invalid socket"
	end
	if func then
		-- the driver accepts from now on: nothing to wait for
		socket_pool[id] = {
			id = id,
			connected = true,
			listen = true,
			callback = func,
			addr = s and s.addr,
			port = s and s.port,
			protocol = "TCP",
		}
		return id
	end
	return connect(id)
end

-- Listens at once, returning id, ip, port (the bound address: port 0 picks one). As in
-- skynet a failure raises "Listen error"; here the driver's reason follows.
function socket.listen(host, port, backlog)
	if port == nil then
		local h, p = split_address(host)
		if h == nil then
			error(sformat("Listen error: invalid address %s", tostring(host)), 2)
		end
		host, port = h, p
	end
	local id, ip, bound_port =
		driver.listen(host, tonumber(port) or port, backlog or DEFAULT_BACKLOG)
	if not id then
		error(sformat("Listen error: %s (%s:%s)", tostring(ip), tostring(host), tostring(port)), 2)
	end
	assert(socket_pool[id] == nil, "socket is not closed")
	socket_pool[id] = {
		id = id,
		connected = false,
		listen = true,
		addr = ip,
		port = bound_port,
		protocol = "TCP",
	}
	return id, ip, bound_port
end

-- skywasm services are sandboxes: there are no host file descriptors to wrap
function socket.bind()
	error("skywasm: no host file descriptors (socket.bind)", 2)
end

function socket.stdin()
	error("skywasm: no host file descriptors (socket.stdin)", 2)
end

---------------------------------------------------------------------------------------------
-- closing

function socket.pause(id)
	local s = socket_pool[id]
	if s then
		pause_socket(s)
	end
end

-- Closes at once, dropping unsent data. The object stays: the CLOSE event marks it
-- disconnected, and socket.close(id) is still needed to forget it (as in skynet).
function socket.shutdown(id)
	if socket_pool[id] then
		driver.shutdown(id)
	end
end

-- Closes a socket this module does not hold (e.g. an accepted id that won't be started).
function socket.close_fd(id)
	assert(socket_pool[id] == nil, "Use socket.close instead")
	driver.close(id)
end

-- Closes (unsent data is still sent) and waits until the driver reports the close, so that
-- no event of the socket is left for whoever gets the id next.
function socket.close(id)
	local s = socket_pool[id]
	if s == nil then
		return
	end
	driver.close(id)
	if s.connected then
		s.pause = false -- don't resume a paused socket to wait for its close
		if s.co then
			-- another coroutine is reading: it is woken by the CLOSE and reads the rest of the
			-- buffer; wait for it (suspend wakes us) rather than pulling the buffer away
			assert(not s.closing, "socket.close: already closing")
			s.closing = coroutine_running()
			skynet.wait(s.closing)
		else
			suspend(s)
		end
		s.connected = false
	else
		-- peer closed already, or not connected yet: nothing more will come for a waiter
		-- (a socket.open/start still waiting for its connect returns nil)
		wakeup(s)
	end
	if socket_pool[id] == s then
		socket_pool[id] = nil
		-- a socket that failed (ERROR) never sent CLOSE: its callback must not outlive it
		socket_onclose[id] = nil
	end
end

-- Forgets the socket without closing it, so another service can socket.start it. What is
-- buffered here is dropped, as in skynet.
function socket.abandon(id)
	local s = socket_pool[id]
	if s then
		s.connected = false
		wakeup(s)
		socket_onclose[id] = nil
		socket_pool[id] = nil
	end
end

---------------------------------------------------------------------------------------------
-- reading

local function stream_socket(id)
	local s = socket_pool[id]
	if s == nil then
		error(sformat("skynet.socket: invalid socket %s", tostring(id)), 3)
	end
	if s.buffer == nil then
		error(sformat("skynet.socket: socket %d is not a stream socket", id), 3)
	end
	return s
end

-- What `take(buffer, arg)` gets from the socket's buffer, waiting once (for `required`, see
-- wait_for) when it gets nothing yet; when the socket closes first: false and what was left
-- in the buffer.
local function read_with(s, take, arg, required)
	local b = s.buffer
	local got = take(b, arg)
	if got then
		return got
	end
	if s.connected then
		wait_for(s, required)
		got = take(b, arg)
		if got then
			return got
		end
	end
	return false, buffer_readall(b)
end

-- Everything buffered, or nil when nothing is.
local function buffer_any(b)
	local ret = buffer_readall(b)
	if ret ~= "" then
		return ret
	end
end

-- sz bytes, or (sz nil) whatever is buffered, else what arrives next. When the socket
-- closes first: false and what was left in the buffer.
function socket.read(id, sz)
	local s = stream_socket(id)
	if sz == nil then
		return read_with(s, buffer_any, nil, 0)
	end
	local n = math_tointeger(tonumber(sz))
	if n == nil or n < 0 then
		error(sformat("socket.read: bad size %s", tostring(sz)), 2)
	end
	if n == 0 then
		-- (skynet's C buffer never satisfies a pop of 0; nothing asks for it on purpose)
		return ""
	end
	return read_with(s, buffer_pop, n, n)
end

-- Everything until the peer closes. On a socket closed already: what is buffered, or false
-- when nothing is (as in skynet).
function socket.readall(id)
	local s = stream_socket(id)
	local b = s.buffer
	if not s.connected then
		local r = buffer_readall(b)
		return r ~= "" and r
	end
	wait_for(s, true)
	return buffer_readall(b)
end

-- The next line without its separator (default "\n"). When the socket closes before a whole
-- line arrives: false and what was left in the buffer.
function socket.readline(id, sep)
	sep = sep or "\n"
	if type(sep) ~= "string" or sep == "" then
		error("socket.readline: the separator must be a non-empty string", 2)
	end
	return read_with(stream_socket(id), buffer_readline, sep, sep)
end

-- Waits until there is something to read or the socket closes; true while connected.
function socket.block(id)
	local s = socket_pool[id]
	if not s or not s.connected or s.buffer == nil then
		return false
	end
	wait_for(s, 0)
	return s.connected
end

---------------------------------------------------------------------------------------------
-- writing

local function payload(data, fname)
	local t = type(data)
	if t == "string" then
		return data
	elseif t == "table" then
		-- skynet's driver also takes an array of strings and sends them joined
		return tconcat(data)
	elseif t == "number" then
		return tostring(data)
	end
	error(sformat("socket.%s: data must be a string, got %s (skywasm has no (ptr, sz) form)",
		fname, t), 3)
end

-- true if queued, false when the socket is closed
function socket.write(id, data)
	return driver.send(id, payload(data, "write"))
end

-- the same through the low-priority queue (sent when the normal queue is empty)
function socket.lwrite(id, data)
	return driver.lsend(id, payload(data, "lwrite"))
end

-- A 1-4 byte big-endian length header -> its value.
function socket.header(str)
	if type(str) ~= "string" then
		error("socket.header: string expected, got " .. type(str), 2)
	end
	local n = #str
	if n < 1 or n > 4 then
		error("Invalid read " .. str, 2)
	end
	local v = 0
	for i = 1, n do
		v = v * 256 + sbyte(str, i)
	end
	return v
end

---------------------------------------------------------------------------------------------
-- state and options

function socket.invalid(id)
	return socket_pool[id] == nil
end

-- true once the socket is neither connected nor connecting; nil for an unknown id
function socket.disconnected(id)
	local s = socket_pool[id]
	if s then
		return not (s.connected or s.connecting)
	end
end

-- Caps the read buffer: when more than `limit` bytes wait while no read of a byte count is
-- pending, the socket is closed (skynet's behaviour).
function socket.limit(id, limit)
	local s = assert(socket_pool[id], "socket.limit: invalid socket")
	s.buffer_limit = limit
end

-- cb(id, kbytes) when the unsent data passes 1 MiB and each doubling after (default: log)
function socket.warning(id, callback)
	local s = assert(socket_pool[id], "socket.warning: invalid socket")
	s.on_warning = callback
end

function socket.onclose(id, callback)
	socket_onclose[id] = callback
end

function socket.netstat()
	return driver.info()
end

-- TLS = 9 (skywasm): the host finished a TLS handshake; data is the protocol version
socket_message[9] = function(id, _, version)
	local s = socket_pool[id]
	if s then
		s.tls = version or "TLS"
		-- only starttls waits for this (a reader woken would take it for a close)
		if s.tls_waiting then
			wakeup(s)
		end
	end
end

-- Makes a socket speak TLS, the host doing the handshake and the encryption (keys never
-- enter the service): as a client of `name` (the server's certificate must name it; the
-- system's roots and the node's tls_ca are trusted), the handshake done when this returns
-- (raises otherwise); or as a server with the node's tls_cert and tls_key — called on an
-- accepted socket before socket.start, the handshake then runs as it starts.
function socket.starttls(id, mode, name)
	local ok, err = driver.tls(id, mode, name)
	if not ok then
		error(sformat("socket %d: tls: %s", id, tostring(err)), 2)
	end
	if mode ~= "client" then
		return true
	end
	local s = socket_pool[id]
	if not s then
		error(sformat("socket %d: tls: not an open socket", id), 2)
	end
	s.tls_waiting = true
	while not s.tls do
		if s.connected == false or socket_pool[id] ~= s then
			s.tls_waiting = nil
			error(sformat("socket %d: tls handshake with %s failed", id, tostring(name)), 2)
		end
		suspend(s)
	end
	s.tls_waiting = nil
	return true
end

-- RESOLVE = 8 (skywasm): ud 0 and the addresses, or ud 1 and why not
socket_message[8] = function(id, failed, text)
	local r = resolving[id]
	if r then
		resolving[id] = nil
		r.failed = failed ~= 0
		r.text = text or ""
		skynet.wakeup(r)
	end
end

-- The addresses of a host name (IPv6 ones when `ipv6`), looked up by the host without
-- blocking a worker (/etc/hosts, the system's DNS servers, the node's `dns_hosts`); raises
-- why not. skynet's looks up on the calling thread.
function socket.resolve(name, ipv6)
	local id, err = driver.resolve(name, ipv6)
	if not id then
		error(sformat("resolve %s: %s", tostring(name), tostring(err)), 2)
	end
	local r = {}
	resolving[id] = r
	skynet.wait(r)
	if r.failed then
		error(r.text, 2)
	end
	local ips = {}
	for ip in string.gmatch(r.text, "%S+") do
		ips[#ips + 1] = ip
	end
	return ips
end

---------------------------------------------------------------------------------------------
-- UDP: a socket with a callback(data, from) for each datagram; `from` is the sender's
-- address as an opaque string (socket.udp_address reads it), for socket.sendto.

local function udp_object(id, callback)
	assert(socket_pool[id] == nil, "socket is not closed")
	socket_pool[id] = {
		id = id,
		connected = true,
		protocol = "UDP",
		callback = callback,
	}
end

-- UDP = 6: ud is the data's length; the data is followed by the sender's address
socket_message[6] = function(id, size, data)
	local s = socket_pool[id]
	if s == nil or s.callback == nil then
		skynet.error("socket: drop udp package from " .. id)
		return
	end
	data = data or ""
	s.callback(ssub(data, 1, size), ssub(data, size + 1))
end

-- A UDP socket bound to host:port (both optional) calling callback(data, from).
function socket.udp(callback, host, port)
	local id, err = driver.udp(host, port)
	if not id then
		error("socket.udp: " .. tostring(err), 2)
	end
	udp_object(id, callback)
	return id
end

-- Sets the default peer of UDP socket `id` (socket.write then sends to it); a callback
-- given here replaces the socket's.
function socket.udp_connect(id, addr, port, callback)
	local s = socket_pool[id]
	if s and callback then
		s.callback = callback
	end
	local ok, err = driver.udp_connect(id, addr, port)
	if not ok then
		error("socket.udp_connect: " .. tostring(err), 2)
	end
end

-- A UDP socket listening on addr:port.
function socket.udp_listen(addr, port, callback)
	return socket.udp(callback, addr, port)
end

-- A UDP socket whose default peer is addr:port, bound to a free port of the same family.
function socket.udp_dial(addr, port, callback)
	local local_host = sfind(addr, ":", 1, true) and "::" or "0.0.0.0"
	local id = socket.udp(callback, local_host, 0)
	socket.udp_connect(id, addr, port)
	return id
end

-- One datagram to `from` (an address a callback received).
function socket.sendto(id, from, data)
	return driver.udp_send(id, from, payload(data, "sendto"))
end

socket.udp_address = driver.udp_address

return socket
