-- Test service: answers "ARGS" with the arguments it was started with.
local skynet = require "skynet"
local args = table.pack(...)
skynet.start(function()
	skynet.dispatch("lua", function()
		skynet.ret(skynet.pack(args.n, table.unpack(args, 1, args.n)))
	end)
end)
