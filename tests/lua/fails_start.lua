-- Test service whose start function raises: newservice of it must fail.
local skynet = require "skynet"
skynet.start(function()
	error("start refuses")
end)
