-- The "debug" protocol every Lua service answers (skynet's lualib/skynet/debug.lua
-- commands): MEM, GC, STAT, TASK, UNIQTASK, INFO, EXIT, RUN, TERM, SUPPORT, PING, LINK,
-- KILLTASK, TRACELOG.
local M = {}

function M.init(skynet, export)
	local info_func

	function skynet.info_func(func)
		local previous = info_func
		info_func = func
		return previous
	end

	local commands = {}

	function commands.MEM()
		skynet.ret(skynet.pack(collectgarbage "count"))
	end

	local collecting = false
	function commands.GC()
		if collecting then
			return
		end
		collecting = true
		local before, before_time = collectgarbage "count", skynet.now()
		collectgarbage "collect"
		skynet.yield() -- GC requests queued meanwhile are skipped
		local after, after_time = collectgarbage "count", skynet.now()
		skynet.error(string.format("GC %.2f Kb -> %.2f Kb, cost %.2f sec",
			before, after, (after_time - before_time) / 100))
		collecting = false
	end

	function commands.STAT()
		skynet.ret(skynet.pack {
			task = skynet.task(),
			mqlen = skynet.stat "mqlen",
			cpu = skynet.stat "cpu",
			message = skynet.stat "message",
		})
	end

	function commands.KILLTASK(threadname)
		local co = skynet.killthread(threadname)
		if co then
			skynet.error(string.format("Kill %s", co))
			skynet.ret()
		else
			skynet.error(string.format("Kill %s : Not found", threadname))
			skynet.ret(skynet.pack "Not found")
		end
	end

	function commands.TASK(session)
		if session then
			skynet.ret(skynet.pack(skynet.task(session)))
		else
			local tasks = {}
			skynet.task(tasks)
			skynet.ret(skynet.pack(tasks))
		end
	end

	function commands.UNIQTASK()
		skynet.ret(skynet.pack(skynet.uniqtask()))
	end

	function commands.INFO(...)
		if info_func then
			skynet.ret(skynet.pack(info_func(...)))
		else
			skynet.ret(skynet.pack(nil))
		end
	end

	function commands.EXIT()
		skynet.exit()
	end

	function commands.RUN(source, filename, ...)
		local inject = require "skynet.inject"
		local ok, output = inject(skynet, source, filename, table.pack(...), export.dispatch)
		collectgarbage "collect"
		skynet.ret(skynet.pack(ok, table.concat(output, "\n")))
	end

	function commands.TERM(service)
		skynet.term(service)
	end

	function commands.SUPPORT(pname)
		return skynet.ret(skynet.pack(skynet.dispatch(pname) ~= nil))
	end

	function commands.PING()
		return skynet.ret()
	end

	function commands.LINK()
		-- never answered: the caller learns that this service ended when the call fails
		skynet.response()
	end

	function commands.TRACELOG(proto, flag)
		if type(proto) ~= "string" then
			flag = proto
			proto = "lua"
		end
		skynet.error(string.format("Turn trace log %s for %s", flag, proto))
		skynet.traceproto(proto, flag)
		skynet.ret()
	end

	skynet.register_protocol {
		name = "debug",
		id = skynet.PTYPE_DEBUG,
		pack = skynet.pack,
		unpack = skynet.unpack,
		dispatch = function(_, _, cmd, ...)
			local f = commands[cmd]
			assert(f, cmd)
			f(...)
		end,
	}
end

return M
