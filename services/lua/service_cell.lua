-- service_cell: the service skynet.service's provider starts for a name; `init` loads the
-- dumped main function and runs it (a `skynet.start` inside it runs right after), as
-- skynet's.
local skynet = require "skynet"

local name = ...
local command = {}

function command.init(code, ...)
	local started
	skynet.start = function(f)
		started = f
	end
	skynet.dispatch("lua", function()
		error("No dispatch function")
	end)
	local main = assert(load(code, name))
	assert(skynet.pcall(main, ...))
	if started then
		started()
	end
	skynet.ret()
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		command[cmd](...)
	end)
end)
