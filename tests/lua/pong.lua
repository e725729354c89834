-- A Lua service for the tests: answers "lua" requests by command.
local skynet = require "skynet"

local count = 0
local CMD = {}

function CMD.PING(...)
	count = count + 1
	return "PONG", count, ...
end

function CMD.ECHO(...)
	return ...
end

function CMD.FAIL(message)
	error(message)
end

function CMD.SLEEP(ticks)
	skynet.sleep(ticks)
	return "SLEPT"
end

function CMD.LATER(value)
	local respond = skynet.response()
	skynet.timeout(1, function() respond(true, value) end)
	return nil, "deferred"
end

function CMD.REFUSE()
	local respond = skynet.response()
	respond(false)
	return nil, "deferred"
end

function CMD.NOTE(...)
	count = count + 1
end

function CMD.COUNT()
	return count
end

function CMD.EXIT()
	skynet.exit()
end

skynet.start(function()
	skynet.dispatch("lua", function(session, source, cmd, ...)
		local f = assert(CMD[cmd], cmd)
		local results = table.pack(f(...))
		if results[2] == "deferred" and results[1] == nil then
			return
		end
		if session ~= 0 then
			skynet.ret(skynet.pack(table.unpack(results, 1, results.n)))
		end
	end)
end)
