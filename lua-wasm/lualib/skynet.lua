-- skynet's Lua API for services running in snlua (skywasm's own implementation, written to
-- the behaviour of skynet's lualib/skynet.lua). Every message reaches `dispatch_message`
-- through skynet.core's callback; requests run in pooled coroutines; a call yields its
-- coroutine until the response (or an error) for its session arrives.

local c = require "skynet.core"
local skynet_require = require "skynet.require"

local tostring, tonumber, type, pairs, select, assert, error =
	tostring, tonumber, type, pairs, select, assert, error
local tinsert, tremove, tunpack = table.insert, table.remove, table.unpack
local coroutine_create, coroutine_yield, coroutine_running, coroutine_close =
	coroutine.create, coroutine.yield, coroutine.running, coroutine.close
local cresume = coroutine.resume
-- the functions every message uses, as upvalues rather than looked up in `c` each time
local csend = c.send
local traceback = debug.traceback

local skynet = {
	PTYPE_TEXT = 0,
	PTYPE_RESPONSE = 1,
	PTYPE_MULTICAST = 2,
	PTYPE_CLIENT = 3,
	PTYPE_SYSTEM = 4,
	PTYPE_HARBOR = 5,
	PTYPE_SOCKET = 6,
	PTYPE_ERROR = 7,
	PTYPE_QUEUE = 8,
	PTYPE_DEBUG = 9,
	PTYPE_LUA = 10,
	PTYPE_SNAX = 11,
	PTYPE_TRACE = 12,
}

-- protocol classes by name and by id
local proto = {}
skynet.proto = proto

-- session -> coroutine waiting for its response ("BREAK": woken early, drop the response)
local session_id_coroutine = {}
-- coroutine -> session and source of the request it is handling
local session_coroutine_id = {}
local session_coroutine_address = {}
-- coroutine -> trace tag (false: tracing forced off)
local session_coroutine_tracetag = {}
-- deferred response closure -> the address it answers
local unresponse = {}
-- tokens of coroutines woken by skynet.wakeup, resumed after the current one yields
local wakeup_queue = {}
-- token -> session of a sleeping/waiting coroutine
local sleep_session = {}
-- session of a call in flight -> the address called
local watching_session = {}
-- sessions whose calls failed, resumed with an error after the current coroutine yields
local error_queue = {}
local error_reason = {} -- session -> the text its error reply carried (skywasm)
-- coroutines started by fork, run after the current message
local fork_queue = { h = 1, t = 0 }
-- source -> trace tag announced by a PTYPE_TRACE message for its next request
local trace_source = {}

local running_thread = nil
-- skynet.core's dispatch (lua-wasm/src/dispatch.rs) records the coroutine it resumes here:
-- running_thread must stay this function's first and only upvalue.
local function set_running(co)
	running_thread = co
end
local init_thread = nil
local trace_timeout = false
local timeout_traceback = nil

local function unknown_request(session, address, msg, sz, prototype)
	skynet.error(string.format("Unknown request (%s): %s", prototype, c.tostring(msg, sz)))
	error(string.format("Unknown session : %d from %x", session, address))
end

function skynet.dispatch_unknown_request(unknown)
	local prev = unknown_request
	unknown_request = unknown
	return prev
end

local function unknown_response(session, address, msg, sz)
	skynet.error(string.format("Response message : %s", c.tostring(msg, sz)))
	error(string.format("Unknown session : %d from %x", session, address))
end

function skynet.dispatch_unknown_response(unknown)
	local prev = unknown_response
	unknown_response = unknown
	return prev
end

---------------------------------------------------------------------------------------------
-- coroutines

-- Every resume records which coroutine runs, for ret/response/context/call.
local function coroutine_resume(co, ...)
	running_thread = co
	return cresume(co, ...)
end

-- Finished coroutines wait here to run the next function (weak: the GC may take them).
local coroutine_pool = setmetatable({}, { __mode = "kv" })
-- pooled coroutine -> the function its next first resume runs (weak: a job never started,
-- such as a killed fork, does not keep its coroutine)
local coroutine_job = setmetatable({}, { __mode = "k" })

-- A coroutine that runs `f` with the arguments of its first resume. A pooled coroutine
-- finds its function in `coroutine_job` when that resume comes, which saves skynet's extra
-- resume/yield pair that hands the function over.
local function co_create(f)
	local n = #coroutine_pool
	local co = coroutine_pool[n]
	if co ~= nil then
		coroutine_pool[n] = nil
		coroutine_job[co] = f
		return co
	end
	local function next_job(...)
		f = coroutine_job[co]
		coroutine_job[co] = nil
		return f(...)
	end
	co = coroutine_create(function(...)
		f(...)
		-- The job is done: whoever resumed this coroutine finishes it (finish_job, through
		-- suspend or natively in skynet.core's dispatch) and puts it in the pool. Until
		-- it runs again `f` stays set, which the weak pool lets the collector take.
		while true do
			next_job(coroutine_yield("END", f))
		end
	end)
	return co
end

-- After a pooled coroutine's job `f` ended ("END"): warns of a request left unanswered,
-- ends its trace, forgets its request and pools the coroutine.
local function finish_job(co, f)
	local session = session_coroutine_id[co]
	if session and session ~= 0 then
		local source = debug.getinfo(f, "S")
		skynet.error(string.format("Maybe forgot response session %s from %s : %s:%d",
			session,
			skynet.address(session_coroutine_address[co]),
			source.source, source.linedefined))
	end
	local tag = session_coroutine_tracetag[co]
	if tag ~= nil then
		if tag then c.trace(tag, "end") end
		session_coroutine_tracetag[co] = nil
	end
	local address = session_coroutine_address[co]
	if address then
		session_coroutine_id[co] = nil
		session_coroutine_address[co] = nil
	end
	coroutine_pool[#coroutine_pool + 1] = co
end

local suspend

local function dispatch_error_queue()
	-- checked first: table.remove is a C call, and the queue is nearly always empty
	if error_queue[1] == nil then
		return
	end
	local session = tremove(error_queue, 1)
	local co = session_id_coroutine[session]
	session_id_coroutine[session] = nil
	return suspend(co, coroutine_resume(co, false, nil, nil, session))
end

local function dispatch_wakeup()
	while wakeup_queue[1] ~= nil do
		local token = tremove(wakeup_queue, 1)
		local session = sleep_session[token]
		if session then
			local co = session_id_coroutine[session]
			local tag = session_coroutine_tracetag[co]
			if tag then c.trace(tag, "resume") end
			session_id_coroutine[session] = "BREAK"
			return suspend(co, coroutine_resume(co, false, "BREAK", nil, session))
		end
	end
	return dispatch_error_queue()
end

-- Handles what a coroutine's resume returned: an error (answered to its caller, then
-- raised), a suspension or a finished job (then woken and failed coroutines run), or its
-- end.
function suspend(co, result, command, param)
	if not result then
		local session = session_coroutine_id[co]
		if session then
			local addr = session_coroutine_address[co]
			if session ~= 0 then
				local tag = session_coroutine_tracetag[co]
				if tag then c.trace(tag, "error") end
				c.send(addr, skynet.PTYPE_ERROR, session, "")
			end
			session_coroutine_id[co] = nil
		end
		session_coroutine_address[co] = nil
		session_coroutine_tracetag[co] = nil
		skynet.fork(function() end) -- run the wakeup and error queues after this message
		local tb = traceback(co, tostring(command))
		coroutine_close(co)
		error(tb)
	end
	if command == "SUSPEND" then
		return dispatch_wakeup()
	elseif command == "END" then
		finish_job(co, param)
		return dispatch_wakeup()
	elseif command == "QUIT" then
		coroutine_close(co)
		return
	elseif command == "USER" then
		error("Call skynet.coroutine.yield out of skynet.coroutine.resume\n" .. traceback(co))
	elseif command == nil then
		return
	else
		error("Unknown command : " .. tostring(command) .. "\n" .. traceback(co))
	end
end

---------------------------------------------------------------------------------------------
-- time and waiting

local function co_create_for_timeout(func, ti)
	if not trace_timeout then
		return co_create(func)
	end
	local tb = traceback(string.format("Timeout %d", ti), 3)
	local co
	co = co_create(function()
		timeout_traceback[co] = nil
		func()
	end)
	timeout_traceback[co] = tb
	return co
end

function skynet.trace_timeout(on)
	trace_timeout = on and true or false
	timeout_traceback = on and setmetatable({}, { __mode = "k" }) or nil
end

-- A session for a timeout of `ti` centiseconds; raises when the host refuses it.
local function new_timeout(ti)
	local session = c.intcommand("TIMEOUT", ti)
	if not session then
		error("timeout refused: the tenant's limit of pending timeouts is reached or the delay is invalid", 3)
	end
	return session
end

function skynet.timeout(ti, func)
	local session = new_timeout(ti)
	local co = co_create_for_timeout(func, ti)
	assert(session_id_coroutine[session] == nil)
	session_id_coroutine[session] = co
	return co
end

local function suspend_sleep(session, token)
	local tag = session_coroutine_tracetag[running_thread]
	if tag then c.trace(tag, "sleep", 2) end
	session_id_coroutine[session] = running_thread
	assert(sleep_session[token] == nil, "token duplicative")
	sleep_session[token] = session
	return coroutine_yield "SUSPEND"
end

function skynet.sleep(ti, token)
	local session = new_timeout(ti)
	token = token or coroutine_running()
	local succ, ret = suspend_sleep(session, token)
	sleep_session[token] = nil
	if succ then
		return
	end
	if ret == "BREAK" then
		return "BREAK"
	else
		error(ret)
	end
end

function skynet.yield()
	return skynet.sleep(0)
end

function skynet.wait(token)
	local session = c.genid()
	token = token or coroutine_running()
	suspend_sleep(session, token)
	sleep_session[token] = nil
	session_id_coroutine[session] = nil
end

function skynet.wakeup(token)
	if sleep_session[token] then
		tinsert(wakeup_queue, token)
		return true
	end
end

function skynet.killthread(thread)
	local session
	if type(thread) == "string" then
		for k, v in pairs(session_id_coroutine) do
			if tostring(v):find(thread, 1, true) then
				session = k
				break
			end
		end
	else
		local t = fork_queue.t
		for i = fork_queue.h, t do
			if fork_queue[i] == thread then
				table.move(fork_queue, i + 1, t, i)
				fork_queue[t] = nil
				fork_queue.t = t - 1
				return thread
			end
		end
		for k, v in pairs(session_id_coroutine) do
			if v == thread then
				session = k
				break
			end
		end
	end
	local co = session_id_coroutine[session]
	if co == nil then
		return
	end
	local addr = session_coroutine_address[co]
	if addr then
		local request = session_coroutine_id[co]
		if request ~= 0 then
			c.send(addr, skynet.PTYPE_ERROR, request, "")
		end
		session_coroutine_id[co] = nil
		session_coroutine_address[co] = nil
	end
	local tag = session_coroutine_tracetag[co]
	if tag then
		c.trace(tag, "end")
		session_coroutine_tracetag[co] = nil
	end
	if watching_session[session] then
		-- the answer to its call may still come: drop it quietly
		session_id_coroutine[session] = "BREAK"
		watching_session[session] = nil
	else
		session_id_coroutine[session] = nil
	end
	for token, sleeping in pairs(sleep_session) do
		if sleeping == session then
			sleep_session[token] = nil
			break
		end
	end
	coroutine_close(co)
	return co
end

function skynet.now()
	return c.now()
end

function skynet.hpc()
	return c.hpc()
end

local starttime
function skynet.starttime()
	if not starttime then
		starttime = c.intcommand("STARTTIME")
	end
	return starttime
end

function skynet.time()
	return skynet.now() / 100 + (starttime or skynet.starttime())
end

---------------------------------------------------------------------------------------------
-- identity, names, env

function skynet.self()
	return c.self()
end

function skynet.localname(name)
	return c.addresscommand("QUERY", name)
end

function skynet.address(addr)
	if type(addr) == "number" then
		return string.format(":%08x", addr)
	else
		return tostring(addr)
	end
end

function skynet.harbor(addr)
	return c.harbor(addr)
end

function skynet.getenv(key)
	return (c.command("GETENV", key))
end

function skynet.setenv(key, value)
	assert(c.command("GETENV", key) == nil, "Can't setenv exist key : " .. key)
	c.command("SETENV", key .. " " .. value)
end

function skynet.error(...)
	return c.error(...)
end

skynet.tracelog = c.trace

function skynet.stat(what)
	return c.intcommand("STAT", what)
end

function skynet.mqlen()
	return c.intcommand("STAT", "mqlen")
end

function skynet.endless()
	return (c.intcommand("STAT", "endless") == 1)
end

function skynet.memlimit(bytes)
	debug.getregistry().memlimit = bytes
	skynet.memlimit = nil -- set only once
end

---------------------------------------------------------------------------------------------
-- serialization

skynet.pack = c.pack
skynet.packstring = c.packstring
skynet.unpack = c.unpack
skynet.tostring = c.tostring
skynet.trash = c.trash

---------------------------------------------------------------------------------------------
-- sending, calling, answering

local function yield_call(service, session)
	watching_session[session] = service
	session_id_coroutine[session] = running_thread
	local succ, msg, sz = coroutine_yield "SUSPEND"
	watching_session[session] = nil
	if not succ then
		-- skywasm: an error reply may say why (the cluster does); scripts matching skynet's
		-- "call failed" still match
		local reason = error_reason[session]
		if reason then
			error_reason[session] = nil
			error("call failed: " .. reason)
		end
		error "call failed"
	end
	return msg, sz
end

function skynet.send(addr, typename, ...)
	local p = proto[typename]
	return csend(addr, p.id, 0, p.pack(...))
end

function skynet.rawsend(addr, typename, msg, sz)
	local p = proto[typename]
	return csend(addr, p.id, 0, msg, sz)
end

function skynet.call(addr, typename, ...)
	local tag = session_coroutine_tracetag[running_thread]
	if tag then
		c.trace(tag, "call", 2)
		c.send(addr, skynet.PTYPE_TRACE, 0, tag)
	end
	local p = proto[typename]
	local session = csend(addr, p.id, nil, p.pack(...))
	if session == nil then
		error("call to invalid address " .. skynet.address(addr))
	end
	return p.unpack(yield_call(addr, session))
end

function skynet.rawcall(addr, typename, msg, sz)
	local tag = session_coroutine_tracetag[running_thread]
	if tag then
		c.trace(tag, "call", 2)
		c.send(addr, skynet.PTYPE_TRACE, 0, tag)
	end
	local p = proto[typename]
	local session = assert(c.send(addr, p.id, nil, msg, sz), "call to invalid address")
	return yield_call(addr, session)
end

function skynet.tracecall(tag, addr, typename, msg, sz)
	c.trace(tag, "tracecall begin")
	c.send(addr, skynet.PTYPE_TRACE, 0, tag)
	local p = proto[typename]
	local session = assert(c.send(addr, p.id, nil, msg, sz), "call to invalid address")
	local msg2, sz2 = yield_call(addr, session)
	c.trace(tag, "tracecall end")
	return msg2, sz2
end

function skynet.redirect(dest, source, typename, ...)
	return c.redirect(dest, source, proto[typename].id, ...)
end

function skynet.ret(msg, sz)
	msg = msg or ""
	local tag = session_coroutine_tracetag[running_thread]
	if tag then c.trace(tag, "response") end
	local co_session = session_coroutine_id[running_thread]
	if co_session == nil then
		error "No session"
	end
	session_coroutine_id[running_thread] = nil
	if co_session == 0 then
		if sz ~= nil then
			c.trash(msg, sz)
		end
		return false -- a one-way message needs no answer
	end
	local co_address = session_coroutine_address[running_thread]
	local ret = csend(co_address, 1, co_session, msg, sz) -- PTYPE_RESPONSE
	if ret then
		return true
	elseif ret == false then
		-- the answer is too large: tell the caller it failed
		c.send(co_address, skynet.PTYPE_ERROR, co_session, "")
	end
	return false
end

function skynet.context()
	local co_session = session_coroutine_id[running_thread]
	local co_address = session_coroutine_address[running_thread]
	return co_session, co_address
end

function skynet.ignoreret()
	-- the request needs no answer
	session_coroutine_id[running_thread] = nil
end

function skynet.response(pack)
	pack = pack or skynet.pack
	local co_session = assert(session_coroutine_id[running_thread], "no session")
	session_coroutine_id[running_thread] = nil
	local co_address = session_coroutine_address[running_thread]
	if co_session == 0 then
		-- a one-way message: nothing to answer
		return function() end
	end
	local function response(ok, ...)
		if ok == "TEST" then
			return unresponse[response] ~= nil
		end
		if not pack then
			error "Can't response more than once"
		end
		local ret
		if unresponse[response] then
			if ok then
				ret = c.send(co_address, skynet.PTYPE_RESPONSE, co_session, pack(...))
				if ret == false then
					c.send(co_address, skynet.PTYPE_ERROR, co_session, "")
				end
			else
				ret = c.send(co_address, skynet.PTYPE_ERROR, co_session, "")
			end
			unresponse[response] = nil
			ret = ret ~= nil
		else
			ret = false
		end
		pack = nil
		return ret
	end
	unresponse[response] = co_address
	return response
end

function skynet.retpack(...)
	return skynet.ret(skynet.pack(...))
end

function skynet.genid()
	return c.genid()
end

---------------------------------------------------------------------------------------------
-- protocols and dispatch

function skynet.register_protocol(class)
	local name = class.name
	local id = class.id
	assert(proto[name] == nil and proto[id] == nil)
	assert(type(name) == "string" and type(id) == "number" and id >= 0 and id <= 255)
	proto[name] = class
	proto[id] = class
end

function skynet.dispatch(typename, func)
	local p = proto[typename]
	if func then
		local ret = p.dispatch
		p.dispatch = func
		return ret
	else
		return p and p.dispatch
	end
end

local function raw_dispatch_message(prototype, msg, sz, session, source)
	if prototype == 1 then -- PTYPE_RESPONSE
		local co = session_id_coroutine[session]
		if co == "BREAK" then
			session_id_coroutine[session] = nil
		elseif co == nil then
			unknown_response(session, source, msg, sz)
		else
			local tag = session_coroutine_tracetag[co]
			if tag then c.trace(tag, "resume") end
			session_id_coroutine[session] = nil
			suspend(co, coroutine_resume(co, true, msg, sz, session))
		end
		return
	end
	local p = proto[prototype]
	if p == nil then
		if prototype == skynet.PTYPE_TRACE then
			-- the tag of the next request from this source
			trace_source[source] = c.tostring(msg, sz)
		elseif session ~= 0 then
			c.send(source, skynet.PTYPE_ERROR, session, "")
		else
			unknown_request(session, source, msg, sz, prototype)
		end
		return
	end
	local f = p.dispatch
	if f then
		local co = co_create(f)
		session_coroutine_id[co] = session
		session_coroutine_address[co] = source
		local traceflag = p.trace
		if traceflag == false then
			trace_source[source] = nil
			session_coroutine_tracetag[co] = false
		else
			local tag = trace_source[source]
			if tag then
				trace_source[source] = nil
				c.trace(tag, "request")
				session_coroutine_tracetag[co] = tag
			elseif traceflag then
				running_thread = co
				skynet.trace()
			end
		end
		suspend(co, coroutine_resume(co, session, source, p.unpack(msg, sz)))
	else
		trace_source[source] = nil
		if session ~= 0 then
			c.send(source, skynet.PTYPE_ERROR, session, "")
		else
			unknown_request(session, source, msg, sz, p.name)
		end
	end
end

-- After a message: runs the coroutines it forked, then raises its error (`succ` false) and
-- theirs, all in one.
local function finish_message(succ, err)
	while true do
		if fork_queue.h > fork_queue.t then
			fork_queue.h = 1
			fork_queue.t = 0
			break
		end
		local h = fork_queue.h
		local co = fork_queue[h]
		fork_queue[h] = nil
		fork_queue.h = h + 1
		local fork_succ, fork_err = pcall(suspend, co, coroutine_resume(co))
		if not fork_succ then
			if succ then
				succ = false
				err = tostring(fork_err)
			else
				err = tostring(err) .. "\n" .. tostring(fork_err)
			end
		end
	end
	if not succ then
		error(tostring(err), 0)
	end
end

function skynet.dispatch_message(...)
	return finish_message(pcall(raw_dispatch_message, ...))
end

function skynet.fork(func, ...)
	local n = select("#", ...)
	local co
	if n == 0 then
		co = co_create(func)
	else
		local args = { ... }
		co = co_create(function() func(tunpack(args, 1, n)) end)
	end
	local t = fork_queue.t + 1
	fork_queue.t = t
	fork_queue[t] = co
	return co
end

---------------------------------------------------------------------------------------------
-- parallel requests: skynet.request{addr, typename, ...}:add{...}:select(timeout)

do
	local request_meta = {}
	request_meta.__index = request_meta

	-- Sends every request; the ones to invalid addresses are returned as failures.
	local function send_requests(self)
		local sessions = {}
		self._sessions = sessions
		local pending = 0
		local failed
		for i = 1, #self do
			local req = self[i]
			local addr = req[1]
			local p = proto[req[2]]
			assert(p and p.unpack, "request: unknown protocol")
			local tag = session_coroutine_tracetag[running_thread]
			if tag then
				c.trace(tag, "call", 4)
				c.send(addr, skynet.PTYPE_TRACE, 0, tag)
			end
			local session = c.send(addr, p.id, nil, p.pack(tunpack(req, 3, req.n)))
			if session == nil then
				failed = failed or {}
				failed[#failed + 1] = req
			else
				sessions[session] = req
				watching_session[session] = addr
				session_id_coroutine[session] = self._thread
				pending = pending + 1
			end
		end
		self._request = pending
		return failed
	end

	-- The coroutine every response of one select resumes: it stores the answer and wakes
	-- the iterating coroutine.
	local function collector(self)
		while true do
			local succ, msg, sz, session = coroutine_yield "SUSPEND"
			if session == self._timeout then
				self._timeout = nil
				self.timeout = true
			else
				watching_session[session] = nil
				local req = self._sessions[session]
				local p = proto[req[2]]
				if succ then
					self._resp[session] = table.pack(p.unpack(msg, sz))
				else
					self._resp[session] = false
				end
			end
			skynet.wakeup(self)
		end
	end

	local function iterate(self)
		return function()
			if self._error then
				local failed = tremove(self._error)
				if failed then
					return failed -- no response: the address was invalid
				end
				self._error = nil
			end
			local session, resp = next(self._resp)
			if session == nil then
				if self._request == 0 or self.timeout then
					return
				end
				skynet.wait(self)
				if self.timeout then
					return
				end
				session, resp = next(self._resp)
			end
			self._request = self._request - 1
			local req = self._sessions[session]
			self._resp[session] = nil
			self._sessions[session] = nil
			return req, resp
		end
	end

	function request_meta:add(obj)
		assert(type(obj) == "table" and not self._thread, "request: add before select")
		self[#self + 1] = obj
		return self
	end

	request_meta.__call = request_meta.add

	function request_meta:close()
		if self._request and self._request > 0 then
			for session in pairs(self._sessions) do
				if not self._resp[session] then
					session_id_coroutine[session] = "BREAK"
					watching_session[session] = nil
				end
			end
			self._request = 0
		end
		if self._timeout then
			session_id_coroutine[self._timeout] = "BREAK"
			self._timeout = nil
		end
	end

	request_meta.__close = request_meta.close

	function request_meta:select(timeout)
		assert(self._thread == nil, "request: select once")
		self._thread = coroutine_create(collector)
		self._error = send_requests(self)
		self._resp = {}
		if timeout then
			self._timeout = new_timeout(timeout)
			session_id_coroutine[self._timeout] = self._thread
		end
		local running = running_thread
		coroutine_resume(self._thread, self)
		running_thread = running
		return iterate(self), nil, nil, self
	end

	function skynet.request(obj)
		local req = setmetatable({}, request_meta)
		if obj then
			return req(obj)
		end
		return req
	end
end

---------------------------------------------------------------------------------------------
-- tracing

function skynet.trace(info)
	if session_coroutine_tracetag[running_thread] == false then
		-- forced off
		return
	end
	if info then
		info = " " .. info
	else
		info = ""
	end
	local tag = string.format(":%08x-%d-%d%s", skynet.self(), skynet.now(), c.genid(), info)
	session_coroutine_tracetag[running_thread] = tag
	c.trace(tag, "trace")
end

function skynet.tracetag()
	return session_coroutine_tracetag[running_thread]
end

function skynet.traceproto(prototype, flag)
	local p = assert(proto[prototype])
	p.trace = flag
end

---------------------------------------------------------------------------------------------
-- services

function skynet.newservice(name, ...)
	return skynet.call(".launcher", "lua", "LAUNCH", "snlua", name, ...)
end

-- Asks .service about a node-unique service; `global == true` selects the global variant.
local function unique_request(local_cmd, global_cmd, global, ...)
	if global == true then
		return assert(skynet.call(".service", "lua", global_cmd, ...))
	end
	return assert(skynet.call(".service", "lua", local_cmd, global, ...))
end

function skynet.uniqueservice(global, ...)
	return unique_request("LAUNCH", "GLAUNCH", global, ...)
end

function skynet.queryservice(global, ...)
	return unique_request("QUERY", "GQUERY", global, ...)
end

function skynet.exit()
	-- nothing forked runs after exit (emptied in place: skynet.core's dispatch holds it)
	for i = fork_queue.h, fork_queue.t do
		fork_queue[i] = nil
	end
	fork_queue.h = 1
	fork_queue.t = 0
	-- answer the requests being handled
	for co, session in pairs(session_coroutine_id) do
		local address = session_coroutine_address[co]
		if session ~= 0 and address then
			c.send(address, skynet.PTYPE_ERROR, session, "")
		end
	end
	for _, co in pairs(session_id_coroutine) do
		if type(co) == "thread" and co ~= running_thread then
			coroutine_close(co)
		end
	end
	for resp in pairs(unresponse) do
		resp(false)
	end
	-- tell the services I called and wait for that I am gone
	local called = {}
	for _, address in pairs(watching_session) do
		called[address] = true
	end
	for address in pairs(called) do
		c.send(address, skynet.PTYPE_ERROR, 0, "")
	end
	c.callback(function(_, _, _, session, source)
		if session ~= 0 and source ~= 0 then
			c.send(source, skynet.PTYPE_ERROR, session, "")
		end
	end)
	c.command("EXIT")
	coroutine_yield "QUIT"
end

function skynet.term(service)
	-- A nested dispatch resumes other coroutines: the caller's coroutine runs on after it.
	local running = running_thread
	skynet.dispatch_message(skynet.PTYPE_ERROR, nil, 0, 0, service)
	running_thread = running
end

function skynet.init(f, name)
	return skynet_require.init(f, name)
end

local function init_all_then(start, ...)
	skynet_require.init_all()
	return start(...)
end

function skynet.pcall(start, ...)
	return xpcall(init_all_then, traceback, start, ...)
end

function skynet.init_service(start)
	local ok, err = skynet.pcall(start)
	if not ok then
		skynet.error("init service failed: " .. tostring(err))
		skynet.send(".launcher", "lua", "ERROR")
		skynet.exit()
	else
		skynet.send(".launcher", "lua", "LAUNCHOK")
	end
end

function skynet.start(start_func)
	c.callback(skynet.dispatch_message)
	if c.upgrading() then
		-- skywasm: started by an upgrade. The start function runs now, inside the init, so
		-- that its failure fails the upgrade and the old code carries on; what it does after
		-- its first wait (a call, a sleep) runs once the new code is in place.
		local co = co_create(function()
			local ok, err = skynet.pcall(start_func)
			init_thread = nil
			if not ok then
				skynet.error("upgrade: the new code's start failed: " .. tostring(err))
				skynet.exit()
			end
		end)
		init_thread = co
		running_thread = co
		suspend(co, coroutine_resume(co))
		if fork_queue.h <= fork_queue.t then
			skynet.timeout(0, function() end) -- a message, after which the forks run
		end
		return
	end
	init_thread = skynet.timeout(0, function()
		skynet.init_service(start_func)
		init_thread = nil
	end)
end

---------------------------------------------------------------------------------------------
-- hot upgrade (skywasm; docs/upgrade.md)

-- `hook()` returns the state this service hands to its next code when it is upgraded, and
-- optionally the state's version (default 1); the state is anything skynet.pack takes.
function skynet.on_upgrade(hook)
	if hook == nil then
		c.upgrade_hook(nil)
		return
	end
	assert(type(hook) == "function", "skynet.on_upgrade: a function expected")
	c.upgrade_hook(function()
		local state, version = hook()
		return c.packstring(state), math.tointeger(version) or 1
	end)
end

-- The state the previous code handed over, and its version, when an upgrade started this
-- code with one; nil otherwise. Taken once.
function skynet.upgraded()
	return c.upgraded()
end

-- Replaces the code of `addr` with `name` (a Lua service: its new script; a wasm module
-- service: its new module), keeping its arguments unless new ones are given, once the
-- message it runs now is done. Returns "restored", version, bytes or "fresh", reason;
-- raises when the upgrade failed (the old code carries on).
function skynet.upgrade(addr, name, ...)
	local target = type(addr) == "number" and skynet.address(addr) or addr
	local param = table.concat({ target, name, ... }, " ")
	local session = c.intcommand("UPGRADE", param)
	if not session then
		error(string.format("skynet.upgrade %s: refused (no such service, not allowed, or an upgrade of it is pending)", param), 2)
	end
	local outcome = skynet.tostring(yield_call(target, session))
	local kind, rest = outcome:match("^(%S+)%s*(.*)$")
	if kind == "restored" then
		local version, bytes = rest:match("^(%d+) (%d+)$")
		return kind, math.tointeger(version), math.tointeger(bytes)
	elseif kind == "fresh" then
		return kind, rest
	end
	error("upgrade failed: " .. tostring(rest), 2)
end

function skynet.endthread()
	return init_thread
end

---------------------------------------------------------------------------------------------
-- introspection

function skynet.task(ret)
	if ret == nil then
		local n = 0
		for _, co in pairs(session_id_coroutine) do
			if type(co) == "thread" then
				n = n + 1
			end
		end
		return n
	end
	if ret == "init" then
		if init_thread then
			return traceback(init_thread)
		else
			return
		end
	end
	local tt = type(ret)
	if tt == "table" then
		for session, co in pairs(session_id_coroutine) do
			local key = string.format("%s session: %d", tostring(co), session)
			if type(co) == "thread" then
				if timeout_traceback and timeout_traceback[co] then
					ret[key] = timeout_traceback[co]
				else
					ret[key] = traceback(co)
				end
			end
		end
		return
	elseif tt == "number" then
		local co = session_id_coroutine[ret]
		if type(co) == "thread" then
			return traceback(co)
		else
			return "No session"
		end
	elseif tt == "thread" then
		for session, co in pairs(session_id_coroutine) do
			if co == ret then
				return session
			end
		end
		return
	end
end

function skynet.uniqtask()
	local stacks = {}
	for session, co in pairs(session_id_coroutine) do
		if type(co) == "thread" then
			local stack = traceback(co)
			local info = stacks[stack] or { count = 0, sessions = {} }
			info.count = info.count + 1
			if info.count < 10 then
				info.sessions[#info.sessions + 1] = session
			end
			stacks[stack] = info
		end
	end
	local ret = {}
	for stack, info in pairs(stacks) do
		local count = info.count
		info.count = nil
		if count > 10 then
			info.sessions[10] = "..."
		end
		local head = string.format("%d : %s", count, table.concat(info.sessions, ","))
		ret[head] = stack
	end
	return ret
end

-- the current coroutine, as skynet.coroutine sees it
function skynet.running()
	return running_thread
end

---------------------------------------------------------------------------------------------
-- built-in protocols

-- A PTYPE_ERROR with a session fails that call; with session 0, the source is gone: fail
-- every call to it and forget the answers owed to it.
local function error_dispatch(error_session, error_source, msg, sz)
	skynet.ignoreret()
	if error_session == 0 then
		for resp, address in pairs(unresponse) do
			if error_source == address then
				unresponse[resp] = nil
			end
		end
		for session, srv in pairs(watching_session) do
			if srv == error_source then
				tinsert(error_queue, session)
			end
		end
	else
		if watching_session[error_session] then
			if sz and sz > 0 then
				error_reason[error_session] = c.tostring(msg, sz)
			end
			tinsert(error_queue, error_session)
		end
	end
end

do
	local REG = skynet.register_protocol
	REG {
		name = "lua",
		id = skynet.PTYPE_LUA,
		pack = skynet.pack,
		unpack = skynet.unpack,
	}
	REG {
		name = "response",
		id = skynet.PTYPE_RESPONSE,
	}
	REG {
		name = "error",
		id = skynet.PTYPE_ERROR,
		unpack = function(...) return ... end,
		dispatch = error_dispatch,
	}
end

-- skynet.core does dispatch_message's common cases itself, on these very tables, when
-- dispatch_message is the callback (lua-wasm/src/dispatch.rs); it hands the rest back here.
c.dispatch_core {
	session_id_coroutine = session_id_coroutine,
	session_coroutine_id = session_coroutine_id,
	session_coroutine_address = session_coroutine_address,
	session_coroutine_tracetag = session_coroutine_tracetag,
	coroutine_pool = coroutine_pool,
	coroutine_job = coroutine_job,
	wakeup_queue = wakeup_queue,
	error_queue = error_queue,
	fork_queue = fork_queue,
	trace_source = trace_source,
	proto = proto,
	dispatch_message = skynet.dispatch_message,
	raw_dispatch_message = raw_dispatch_message,
	suspend = suspend,
	co_create = co_create,
	set_running = set_running,
	dispatch_wakeup = dispatch_wakeup,
	finish_message = finish_message,
}

-- The debug protocol (MEM, GC, STAT, TASK, INFO, EXIT, RUN, ...).
local debug_protocol = require "skynet.debug"
debug_protocol.init(skynet, {
	dispatch = skynet.dispatch_message,
	suspend = suspend,
	resume = coroutine_resume,
})

-- skynet's code cache API (snlua here has no cache: see skynet.codecache).
skynet.cache = require "skynet.codecache"

return skynet
