-- skynet's two-step module initialisation, and a `require` that may yield.
--
-- skynet.init(f) registers f to run once the module being loaded has run: a module required
-- by the service's main chunk has its functions run by skynet.start, before the start
-- function; a module required inside a coroutine (a request, a fork) has them run as soon
-- as its main chunk has, before `require` returns — so they may call other services (the
-- Lua loader replaces the global `require` with this one, as skynet's does). A module that
-- one coroutine is loading makes another that requires it wait until it is loaded.
local M = {}

local loaded = package.loaded
local lua_require = require

-- functions registered by the main chunk's modules, run by init_all (nil once it ran)
local main_inits = {}
-- coroutine -> functions registered by the module it is loading (an entry lives only
-- while its require runs; not weak, which would cost every collection of every service)
local context = {}
-- module name -> { co = the loading coroutine, waiting coroutines... }
local loading = {}

-- The loader of `name` from package.searchers, as require finds it, or nil.
local function find_loader(name)
	for _, searcher in ipairs(package.searchers) do
		local loader, extra = searcher(name)
		if type(loader) == "function" then
			return loader, extra
		end
	end
end

function M.require(name)
	local m = loaded[name]
	if m ~= nil then
		return m
	end
	local co, main = coroutine.running()
	if main then
		return lua_require(name)
	end
	local loader, extra = find_loader(name)
	if not loader then
		return lua_require(name) -- raises require's own error
	end
	local queue = loading[name]
	if queue then
		assert(queue.co ~= co, "circular dependency")
		local skynet = lua_require "skynet"
		queue[#queue + 1] = co
		skynet.wait(co)
		m = loaded[name]
		if m == nil then
			error(string.format("require %s failed", name))
		end
		return m
	end
	queue = { co = co }
	loading[name] = queue
	local outer = context[co]
	local inits = {}
	context[co] = inits
	local ok, err = xpcall(function()
		local result = loader(name, extra)
		if result ~= nil then
			loaded[name] = result
		elseif loaded[name] == nil then
			loaded[name] = true
		end
		for _, f in ipairs(inits) do
			f()
		end
	end, debug.traceback)
	context[co] = outer
	loading[name] = nil
	if #queue > 0 then
		local skynet = lua_require "skynet"
		for _, waiting in ipairs(queue) do
			skynet.wakeup(waiting)
		end
	end
	if not ok then
		error(err, 0)
	end
	return loaded[name]
end

function M.init(f, name)
	assert(type(f) == "function", "skynet.init needs a function")
	local inits = context[coroutine.running()]
	if inits then
		inits[#inits + 1] = f
	elseif main_inits then
		main_inits[#main_inits + 1] = { f = f, name = name }
	else
		f()
	end
end

function M.init_all()
	local funcs = main_inits
	main_inits = nil
	if funcs then
		for _, entry in ipairs(funcs) do
			entry.f()
		end
	end
end

return M
