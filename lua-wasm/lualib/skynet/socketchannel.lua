-- skynet.socketchannel: a client TCP connection shared by the coroutines of a service, with
-- request/response matching and reconnection on demand (skywasm's own implementation,
-- written to the behaviour and API of skynet's lualib/skynet/socketchannel.lua).
--
--   local sc = require "skynet.socketchannel"
--   local ch = sc.channel {
--       host = "127.0.0.1", port = 6379,
--       backup = { "10.0.0.2", { host = "10.0.0.3", port = 7000 } }, -- tried in turn
--       auth = function(ch) ... ch:request(...) ... end, -- after every (re)connect
--       response = function(sock) return session, ok, data[, padding] end, -- session mode
--       nodelay = true,
--       overload = function(is_overloaded) ... end,
--   }
--
-- Order mode (no `response` in the description): ch:request(req, function(sock) return
-- ok, data[, padding] end) sends req and the function reads the reply from `sock`; replies
-- come in the order of the requests. Session mode: ch:request(req, session) and the
-- channel's `response` reads every reply and says which session it answers.
--
-- A dropped connection fails every request waiting on it with socketchannel.error (or with
-- the error a response function raised); the next request connects again.
--
-- Each connection is a "link": the object response functions get as `sock` ([1] is the
-- socket id), with its own reader coroutine and its own waiting requests, so nothing of an
-- old connection can answer a request sent on a new one.

local skynet = require "skynet"
local socket = require "skynet.socket"
local driver = require "skynet.socketdriver"

local assert, error, type, tostring, pairs, ipairs, pcall, setmetatable, getmetatable =
	assert, error, type, tostring, pairs, ipairs, pcall, setmetatable, getmetatable
local sformat = string.format
local coroutine_running = coroutine.running

local socketchannel = {}

-- What requests raise when the connection fails; compare errors with it.
local socket_error = setmetatable({}, {
	__tostring = function()
		return "[Error: socket]"
	end,
})
socketchannel.error = socket_error

local CLOSED = "socketchannel: the channel is closed"

---------------------------------------------------------------------------------------------
-- links

local link = {} -- methods of the `sock` a response function reads from

local link_meta = {
	__index = link,
	-- a link nobody holds any more gives its socket back
	__gc = function(l)
		local fd = l[1]
		if fd then
			l[1] = false
			pcall(socket.shutdown, fd)
		end
	end,
}

-- The socket functions, raising socket_error where they would return false (the peer is
-- gone, or the link was closed).
local function checked(self, read, arg)
	local fd = self[1]
	if not fd then
		error(socket_error)
	end
	local r = read(fd, arg)
	if not r then
		error(socket_error)
	end
	return r
end

function link:read(sz)
	return checked(self, socket.read, sz)
end

function link:readline(sep)
	return checked(self, socket.readline, sep)
end

-- everything until the peer closes (an extension: skynet's sock has read and readline)
function link:readall()
	return checked(self, socket.readall)
end

-- A waiting request: its record is the token it sleeps on, so a stray second wakeup can
-- never reach a later wait of the same coroutine.
local function finish(rec, ok, data)
	if rec.done then
		return
	end
	rec.done = true
	rec.ok = ok
	rec.data = data
	skynet.wakeup(rec)
end

local function fail_waiters(l, errmsg)
	local q = l.queue
	if q then
		for i = q.h, q.t do
			local rec = q[i]
			q[i] = nil
			finish(rec, socket_error, errmsg)
		end
		q.h, q.t = 1, 0
	else
		local sessions = l.sessions
		for session, rec in pairs(sessions) do
			sessions[session] = nil
			finish(rec, socket_error, errmsg)
		end
	end
end

-- Ends a link: it stops being the channel's, its waiting requests fail (errmsg, or
-- socket_error when nil), its reader is woken to leave, and its socket is closed (which
-- may wait for the driver). Ending a link twice does nothing more.
local function drop_link(self, l, errmsg)
	if self.__sock == l then
		self.__sock = false
	end
	if l.dead then
		return
	end
	l.dead = true
	fail_waiters(l, errmsg)
	local idle = l.idle
	if idle then
		l.idle = nil
		skynet.wakeup(idle)
	end
	local fd = l[1]
	if fd then
		l[1] = false
		-- (an ERROR event is not followed by a CLOSE: don't leave a callback behind for
		-- the next socket that gets this id)
		socket.onclose(fd, nil)
		pcall(socket.close, fd)
	end
end

---------------------------------------------------------------------------------------------
-- readers: one coroutine per link

-- order mode: a response function may say more parts follow (padding); the parts are
-- returned as one array
local function read_reply(func, l)
	local ok, data, more = func(l)
	if not (ok and more) then
		return ok, data
	end
	local parts, n = { data }, 1
	repeat
		ok, data, more = func(l)
		if not ok then
			return ok, data
		end
		n = n + 1
		parts[n] = data
	until not more
	return true, parts
end

local function order_reader(self, l)
	local q = l.queue
	while not l.dead do
		local h = q.h
		if h > q.t then
			-- nothing is expected: wait for a request, or notice a peer gone meanwhile
			local fd = l[1]
			if not fd or socket.disconnected(fd) ~= false then
				skynet.error("socket closed by peer : ", self.__host, self.__port)
				drop_link(self, l)
				break
			end
			local token = {}
			l.idle = token
			skynet.wait(token)
			l.idle = nil
		else
			local rec = q[h]
			q[h] = nil
			if h == q.t then
				q.h, q.t = 1, 0
			else
				q.h = h + 1
			end
			local ok, rok, rdata = pcall(read_reply, rec.func, l)
			if ok then
				finish(rec, rok, rdata)
			else
				-- the stream can't be trusted any more
				local errmsg
				if rok ~= socket_error then
					errmsg = rok
				end
				finish(rec, socket_error, errmsg)
				drop_link(self, l, errmsg)
			end
		end
	end
end

local function session_reader(self, l)
	local response = self.__response
	local sessions = l.sessions
	while not l.dead do
		local ok, session, rok, rdata, more = pcall(response, l)
		if ok and session then
			local rec = sessions[session]
			if rec == nil then
				skynet.error("socket: unknown session :", session)
			elseif more and rok then
				-- one part of a reply in several
				local parts = rec.parts
				if parts == nil then
					parts = {}
					rec.parts = parts
				end
				parts[#parts + 1] = rdata
			else
				sessions[session] = nil
				local parts = rec.parts
				if parts and rok then
					parts[#parts + 1] = rdata
					rdata = parts
				end
				finish(rec, rok, rdata)
			end
		else
			if l.dead then
				break -- closed here (close, changehost, a failed write)
			end
			local errmsg
			if not ok and session ~= socket_error then
				errmsg = session
			end
			drop_link(self, l, errmsg)
		end
	end
end

local function run_reader(self, l)
	local reader = l.queue and order_reader or session_reader
	local ok, err = pcall(reader, self, l)
	if not ok then
		skynet.error("socketchannel: reader failed: " .. tostring(err))
		pcall(drop_link, self, l)
	end
end

---------------------------------------------------------------------------------------------
-- connecting

local function overload_watch(self, l, notify)
	return function(id, size)
		if self.__sock ~= l or l[1] ~= id then
			return
		end
		if size == 0 then
			if self.__overload then
				self.__overload = false
				notify(false)
			end
		elseif not self.__overload then
			self.__overload = true
			notify(true)
		else
			skynet.error(sformat("WARNING: %d K bytes need to send out (fd = %d %s:%s)",
				size, id, tostring(self.__host), tostring(self.__port)))
		end
	end
end

-- Opens a socket to host:port and makes it the channel's link, with its reader started.
local function open_link(self, host, port)
	local fd, err = socket.open(host, port)
	if not fd then
		return nil, err
	end
	if self.__nodelay then
		driver.nodelay(fd)
	end
	local l = setmetatable({ fd }, link_meta)
	if self.__response then
		l.sessions = {}
	else
		l.queue = { h = 1, t = 0 }
		-- nobody reads an order-mode socket while no reply is expected: hear the close
		socket.onclose(fd, function()
			if not l.dead and l.idle then
				skynet.error("socket closed by peer : ", self.__host, self.__port)
				drop_link(self, l)
			end
		end)
	end
	local notify = self.__overload_notify
	if notify then
		socket.warning(fd, overload_watch(self, l, notify))
		if self.__overload then
			-- a new connection has nothing unsent
			self.__overload = false
			skynet.fork(notify, false)
		end
	end
	self.__sock = l
	skynet.fork(run_reader, self, l)
	return l
end

-- auth(channel) on a new link; false when it failed (the link is dropped then)
local function run_auth(self, l)
	local auth = self.__auth
	if not auth then
		return true
	end
	self.__authcoroutine = coroutine_running()
	local ok, err = pcall(auth, self)
	self.__authcoroutine = false
	if ok then
		return true
	end
	if err ~= socket_error then
		skynet.error("socket: auth failed", tostring(err))
	end
	drop_link(self, l)
	return false, "auth failed: " .. tostring(err)
end

-- backup entries are a host (on the channel's port) or { host =, port = }
local function add_backups(self, add)
	local backup = self.__backup
	if type(backup) ~= "table" then
		return
	end
	for _, b in ipairs(backup) do
		if type(b) == "table" then
			add(b.host, b.port or self.__port)
		else
			add(b, self.__port)
		end
	end
end

-- One pass over the host and its backups: true once one is connected and authenticated,
-- else false and the last reason. Starts over when changehost is called meanwhile.
local function connect_once(self)
	while true do
		if self.__closed then
			return false, "channel closed"
		end
		local version = self.__version
		local list, seen = {}, {}
		local function add(host, port)
			if host == nil or port == nil then
				return
			end
			local key = tostring(host) .. ":" .. tostring(port)
			if not seen[key] then
				seen[key] = true
				list[#list + 1] = { host, port }
			end
		end
		add(self.__host, self.__port)
		add_backups(self, add)
		local err = "no address"
		local restart = false
		local i = 1
		while list[i] do
			local host, port = list[i][1], list[i][2]
			if i > 1 then
				skynet.error("socket: connect to backup host", host, port)
			end
			i = i + 1
			local l, e = open_link(self, host, port)
			if self.__closed or self.__version ~= version then
				if l then
					drop_link(self, l)
				end
				restart = true
				break
			end
			if l then
				self.__host, self.__port = host, port
				local ok, aerr = run_auth(self, l)
				if self.__closed or self.__version ~= version then
					-- (auth may call changehost: connect to the new host)
					if self.__sock == l then
						drop_link(self, l)
					end
					restart = true
					break
				end
				if ok then
					if self.__sock == l then
						return true
					end
					err = "connection lost after auth"
				else
					err = aerr
					add_backups(self, add) -- auth may have changed the backups
				end
			else
				err = e
			end
		end
		if not restart then
			return false, err
		end
	end
end

-- once: one pass; else passes until connected or closed, sleeping 0, 1, 2 .. 11 seconds
-- in between, then 1 .. 11 again (skynet's pattern). close and changehost cut a sleep short.
local function try_connect(self, once)
	local delay = 0
	while not self.__closed do
		local ok, err = connect_once(self)
		if ok then
			if not once then
				skynet.error("socket: connect to", self.__host, self.__port)
			end
			return
		elseif once then
			return err
		end
		skynet.error("socket: connect", tostring(err))
		if self.__closed then
			break
		end
		if delay > 1000 then
			skynet.error("socket: try to reconnect", self.__host, self.__port)
		end
		local token = {}
		self.__retry = token
		skynet.sleep(delay, token)
		self.__retry = false
		if delay > 1000 then
			delay = 0
		end
		delay = delay + 100
	end
	return "channel closed"
end

local function wake_retry(self)
	local token = self.__retry
	if token then
		self.__retry = false
		skynet.wakeup(token)
	end
end

-- true: the link may be used by the running coroutine; false: the channel is closed;
-- nil: a connect is needed (or is under way in another coroutine).
local function check_connection(self)
	local l = self.__sock
	if l then
		if socket.disconnected(l[1]) ~= false then
			skynet.error("socket: disconnect detected ", self.__host, self.__port)
			drop_link(self, l)
		else
			local authco = self.__authcoroutine
			if not authco or authco == coroutine_running() then
				return true
			end
		end
	end
	if self.__closed then
		return false
	end
	return nil
end

local function block_connect(self, once)
	local r = check_connection(self)
	if r ~= nil then
		return r
	end
	if self.__authcoroutine == coroutine_running() then
		-- auth's own connection is gone: waiting for the connect would wait for ourselves
		error(socket_error)
	end
	local err
	if self.__connecting then
		local token = {}
		local waiting = self.__connect_waiting
		waiting[#waiting + 1] = token
		skynet.wait(token)
	else
		self.__connecting = true
		local ok, e = pcall(try_connect, self, once)
		self.__connecting = false
		local waiting = self.__connect_waiting
		self.__connect_waiting = {}
		for i = 1, #waiting do
			skynet.wakeup(waiting[i])
		end
		if not ok then
			error(e, 0)
		end
		err = e
	end
	r = check_connection(self)
	if r == nil then
		skynet.error(sformat("Connect to %s:%s failed (%s)",
			tostring(self.__host), tostring(self.__port), tostring(err or "connection lost")))
		error(socket_error)
	end
	return r
end

---------------------------------------------------------------------------------------------
-- channels

local channel = {}
local channel_meta = {
	__index = channel,
	-- a channel left alone: nothing may wait here (no yield in __gc), the link's own __gc
	-- gives the socket back
	__gc = function(self)
		self.__closed = true
	end,
}

function socketchannel.channel(desc)
	assert(type(desc) == "table", "socketchannel.channel: a description table expected")
	local self = {
		__host = assert(desc.host, "socketchannel.channel: host expected"),
		__port = assert(desc.port, "socketchannel.channel: port expected"),
		__backup = desc.backup,
		__auth = desc.auth,
		__response = desc.response, -- session mode when set
		__nodelay = desc.nodelay,
		__overload_notify = desc.overload,
		__overload = false,
		__sock = false, -- the current link
		__closed = false,
		__authcoroutine = false,
		__connecting = false,
		__connect_waiting = {},
		__retry = false,
		__version = 0, -- changehost count, to notice a change during a connect
	}
	return setmetatable(self, channel_meta)
end

-- Connects now. once: one try of the host and its backups, raising socketchannel.error when
-- none answers; else tries until connected. true when connected.
function channel:connect(once)
	self.__closed = false
	return block_connect(self, once)
end

-- Waits for the reply `response` selects on link l: a response function (order mode) or a
-- session (session mode).
local function wait_reply(self, l, response)
	local rec = {}
	if l.sessions then
		l.sessions[response] = rec
	else
		rec.func = response
		local q = l.queue
		local t = q.t + 1
		q[t] = rec
		q.t = t
		local idle = l.idle
		if idle then
			l.idle = nil
			skynet.wakeup(idle)
		end
	end
	skynet.wait(rec)
	local ok, data = rec.ok, rec.data
	if ok == socket_error then
		error(data == nil and socket_error or data, 0)
	end
	if not ok then
		error(data == nil and "assertion failed!" or data, 0)
	end
	return data
end

local function check_response(self, l, response)
	if self.__response then
		if response == nil then
			error("socketchannel: a session expected", 3)
		end
		if l.sessions[response] then
			error("socketchannel: session " .. tostring(response) .. " is waiting already", 3)
		end
	elseif type(response) ~= "function" then
		local mt = getmetatable(response)
		if type(mt) == "table" and mt.__call then
			return
		end
		error("socketchannel: a response function expected, got " .. type(response), 3)
	end
end

local function write_failed(self, l)
	drop_link(self, l)
	error(socket_error)
end

-- Sends `request` (a string or an array of strings), then the strings of `padding` if
-- given, and returns the reply `response` selects (nothing when response is nil). Connects
-- first when needed (one try).
function channel:request(request, response, padding)
	if not block_connect(self, true) then
		error(CLOSED, 2)
	end
	local l = self.__sock
	if response ~= nil then
		check_response(self, l, response)
	end
	if padding ~= nil and type(padding) ~= "table" then
		-- (checked before anything is sent: half a request would spoil the stream)
		error("socketchannel: padding must be an array of strings, got " .. type(padding), 2)
	end
	local fd = l[1]
	-- all writes go to the normal queue back to back: the parts of a request are never
	-- split by another's
	if not socket.write(fd, request) then
		write_failed(self, l)
	end
	if padding then
		for _, part in ipairs(padding) do
			if not socket.write(fd, part) then
				write_failed(self, l)
			end
		end
	end
	if response == nil then
		return
	end
	return wait_reply(self, l, response)
end

-- Waits for a reply without sending anything (order mode: the next message the server
-- pushes, read by the function; session mode: the reply to a session). Connects first when
-- needed, trying until connected.
function channel:response(response)
	if not block_connect(self) then
		error(CLOSED, 2)
	end
	local l = self.__sock
	check_response(self, l, response)
	return wait_reply(self, l, response)
end

-- Closes the connection; the requests waiting on it raise socketchannel.error. connect
-- opens the channel again.
function channel:close()
	if self.__closed then
		return
	end
	self.__closed = true
	wake_retry(self)
	local l = self.__sock
	if l then
		drop_link(self, l)
	end
end

-- The next connect goes to host:port (port unchanged when nil); the current connection is
-- closed, and the requests waiting on it raise socketchannel.error.
function channel:changehost(host, port)
	self.__host = host
	if port then
		self.__port = port
	end
	self.__version = self.__version + 1
	if not self.__closed then
		wake_retry(self)
		local l = self.__sock
		if l then
			drop_link(self, l)
		end
	end
end

function channel:changebackup(backup)
	self.__backup = backup
end

return socketchannel
