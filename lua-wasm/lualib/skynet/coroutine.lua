-- skynet.coroutine: coroutines that may use the skynet API (call, sleep, wait) inside them.
-- A skynet call inside such a coroutine suspends the service's own coroutine that resumed it
-- and, when the answer comes, passes it back in; `yield` and `resume` between the user's
-- coroutines work as Lua's. Same functions as Lua's `coroutine` library (`close` too), plus `thread`.
local resume_raw = coroutine.resume
local yield_raw = coroutine.yield
local status_raw = coroutine.status
local running = coroutine.running
local select = select

local M = {
	isyieldable = coroutine.isyieldable,
	running = coroutine.running,
}

-- true: a skynet.coroutine not blocked; false: blocked in the skynet framework; nil: not ours
-- (or finished)
local ours = setmetatable({}, { __mode = "kv" })
-- coroutine -> the service coroutine at the root of its resumes
local root_of = setmetatable({}, { __mode = "kv" })

function M.create(f)
	local co = coroutine.create(f)
	ours[co] = true
	return co
end

local function unblock(co, ...)
	ours[co] = true
	return ...
end

-- The coroutine yielded to the framework (a call, a sleep): yield the same from the service
-- coroutine, then hand what it gets back to the inner coroutine.
local function pass_up(co, ...)
	ours[co] = false
	return unblock(co, resume_raw(co, yield_raw(...)))
end

local function after_resume(co, ok, ...)
	if not ok then
		return false, ...
	elseif status_raw(co) == "dead" then
		ours[co] = nil
		return true, ...
	elseif (...) == "USER" then
		return true, select(2, ...)
	else
		return after_resume(co, pass_up(co, ...))
	end
end

function M.resume(co, ...)
	local state = ours[co]
	if not state then
		if state == false then
			return false, "cannot resume a skynet coroutine suspend by skynet framework"
		end
		if status_raw(co) == "dead" then
			return resume_raw(co, ...) -- false, "cannot resume dead coroutine"
		end
		return false, "cannot resume none skynet coroutine"
	end
	local from = running()
	root_of[co] = root_of[from] or from
	return after_resume(co, resume_raw(co, ...))
end

function M.yield(...)
	return yield_raw("USER", ...)
end

function M.status(co)
	local status = status_raw(co)
	if status == "suspended" and ours[co] == false then
		return "blocked"
	end
	return status
end

-- The service coroutine at the root of `co` (default: the running one), and whether `co`
-- is itself a service coroutine.
function M.thread(co)
	co = co or running()
	if ours[co] ~= nil then
		return root_of[co], false
	end
	return co, true
end

local function unwrap(ok, ...)
	if ok then
		return ...
	end
	error(...)
end

function M.wrap(f)
	local co = M.create(function(...)
		return f(...)
	end)
	return function(...)
		return unwrap(M.resume(co, ...))
	end
end

-- Closes a skynet.coroutine (its to-be-closed variables run), as Lua's coroutine.close.
function M.close(co)
	ours[co] = nil
	root_of[co] = nil
	return coroutine.close(co)
end

return M
