-- skynet.netpack: the packet framing of skynet's gate (skywasm's own implementation, written
-- to the behaviour of skynet's C lualib-src/lua-netpack.c). Every packet is a 2-byte
-- big-endian length and that many bytes (0 to 65535).
--
-- skynet's module hands packets out as malloc'ed (lightuserdata, size) and keeps its queue in
-- a userdata; here packets are Lua strings (sz is their length) and the queue is a table.
-- skynet.core's send/redirect take a string where skynet takes (msg, sz), so a gate passes
-- them on unchanged.

local driver = require "skynet.socketdriver"
local c = require "skynet.core"

local type, error, tostring = type, error, tostring
local sbyte, ssub, spack, sformat = string.byte, string.sub, string.pack, string.format
local tconcat = table.concat

local MAX_PACKET = 0xffff

-- PTYPE_SOCKET event types (skynet_socket.h)
local SOCKET_DATA = 1
local SOCKET_CLOSE = 3
local SOCKET_ACCEPT = 4
local SOCKET_ERROR = 5
local SOCKET_WARNING = 7

local netpack = {}

---------------------------------------------------------------------------------------------
-- the queue: complete packets waiting for pop (fds[h..t], msgs[h..t]), and per fd the packet
-- it is in the middle of. A partial packet is either { header = first byte } (only one byte
-- of the length came) or { need = length, got = bytes so far, n = #pieces, [1..n] = pieces }:
-- pieces are joined once, when the packet completes, so a packet arriving a byte at a time
-- costs no more than one arriving whole.

local function new_queue()
	return { h = 1, t = 0, fds = {}, msgs = {}, partial = {} }
end

local function push(q, fd, msg)
	local t = q.t + 1
	q.fds[t] = fd
	q.msgs[t] = msg
	q.t = t
end

-- One DATA event of `fd`: returns what filter returns for it.
local function filter_data(q, fd, data)
	local len = #data
	if len == 0 then
		return q
	end
	local partial = q.partial
	local pos = 1
	-- the first complete packet is held back: when it is the only one it goes out as "data"
	-- without passing through the queue
	local count, first = 0, nil

	local st = partial[fd]
	if st then
		partial[fd] = nil
		if st.need == nil then
			-- the second byte of the length
			st = { need = st.header * 256 + sbyte(data, 1), got = 0, n = 0 }
			pos = 2
		end
		local missing = st.need - st.got
		local avail = len - pos + 1
		if avail < missing then
			local n = st.n + 1
			st[n] = pos == 1 and data or ssub(data, pos)
			st.n = n
			st.got = st.got + avail
			partial[fd] = st
			return q
		end
		local n = st.n
		if missing > 0 then
			n = n + 1
			st[n] = ssub(data, pos, pos + missing - 1)
		end
		if n == 0 then
			first = ""
		elseif n == 1 then
			first = st[1]
		else
			first = tconcat(st, "", 1, n)
		end
		count = 1
		pos = pos + missing
	end

	while pos <= len do
		if pos == len then
			partial[fd] = { header = sbyte(data, pos) }
			break
		end
		local hi, lo = sbyte(data, pos, pos + 1)
		local size = hi * 256 + lo
		pos = pos + 2
		local avail = len - pos + 1
		if avail < size then
			st = { need = size, got = avail, n = 0 }
			if avail > 0 then
				st.n = 1
				st[1] = ssub(data, pos)
			end
			partial[fd] = st
			break
		end
		local msg = size == 0 and "" or ssub(data, pos, pos + size - 1)
		pos = pos + size
		if count == 0 then
			first = msg
		else
			if count == 1 then
				push(q, fd, first)
			end
			push(q, fd, msg)
		end
		count = count + 1
	end

	if count == 0 then
		return q -- only a fragment so far
	elseif count == 1 then
		return q, "data", fd, first, #first
	end
	return q, "more"
end

-- The "socket" protocol's unpack for a gate. Returns the queue to keep (created when `queue`
-- is nil), then one of: "data", fd, msg, sz (one packet); "more" (several: netpack.pop them);
-- "open", fd, addr (a client accepted, not read until started); "close", fd; "error", fd,
-- reason; "warning", fd, unsent KiB; or no type when nothing is complete yet.
function netpack.filter(queue, msg, sz)
	if queue ~= nil and type(queue) ~= "table" then
		error("netpack.filter: the queue must be the table filter returned, got " .. type(queue), 2)
	end
	local t, id, ud, data = driver.unpack(msg, sz)
	local q = queue or new_queue()
	if t == SOCKET_DATA then
		if data == nil then
			return q
		end
		return filter_data(q, id, data)
	elseif t == SOCKET_ACCEPT then
		-- the new connection (the listener's id is of no use to a gate with one listener)
		return q, "open", ud, data or ""
	elseif t == SOCKET_CLOSE then
		-- nothing more comes from this fd: half a packet never completes
		q.partial[id] = nil
		return q, "close", id
	elseif t == SOCKET_ERROR then
		q.partial[id] = nil
		return q, "error", id, data or ""
	elseif t == SOCKET_WARNING then
		return q, "warning", id, ud
	end
	-- CONNECT (a start took effect, on the listener or a client) and anything else: nothing
	-- for the gate to do, as in skynet
	return q
end

-- The oldest queued packet: fd, msg, sz; nothing when the queue is empty.
function netpack.pop(queue)
	if queue == nil then
		return
	end
	local h = queue.h
	local t = queue.t
	if h > t then
		return
	end
	local fds, msgs = queue.fds, queue.msgs
	local fd, msg = fds[h], msgs[h]
	fds[h] = nil
	msgs[h] = nil
	if h == t then
		-- empty again: start the indices over so they stay small
		queue.h, queue.t = 1, 0
	else
		queue.h = h + 1
	end
	return fd, msg, #msg
end

-- Drops every queued packet and every partial one.
function netpack.clear(queue)
	if type(queue) ~= "table" then
		return
	end
	queue.h, queue.t = 1, 0
	queue.fds, queue.msgs, queue.partial = {}, {}, {}
end

-- The framed packet, as a string and its length (skynet: a malloc'ed (msg, sz)): socket.write
-- and the socket driver's send take the string, the length is there for code that passes
-- (msg, sz) on. The payload is a string or, as in skynet, a message (msg, sz), which is
-- copied and left to its owner.
function netpack.pack(msg, sz)
	local tm = type(msg)
	local s
	if tm == "string" then
		s = msg
	elseif tm == "number" then
		s = tostring(msg)
	elseif tm == "userdata" then
		s = c.tostring(msg, sz)
	else
		error("netpack.pack: string expected, got " .. tm, 2)
	end
	local n = #s
	if n > MAX_PACKET then
		error(sformat("Invalid size (too long) of data : %d", n), 2)
	end
	return spack(">s2", s), n + 2
end

-- A packet as a string. skynet's frees the (msg, sz) it is given, so this does too when given
-- a message buffer; a string packet is returned as it is.
function netpack.tostring(msg, sz)
	local tm = type(msg)
	if tm == "string" then
		return msg
	elseif msg == nil then
		return ""
	elseif tm == "userdata" then
		local s = c.tostring(msg, sz)
		c.trash(msg, sz)
		return s
	end
	error("netpack.tostring: a packet expected, got " .. tm, 2)
end

return netpack
