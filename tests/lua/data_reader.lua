-- Reads a data file and a snax interface, makes an stm object and a shared table, and says
-- what happened (an untrusted tenant's
-- service in skynet_libs.rs: no abort, no check library).
local skynet = require "skynet"
local path = ...

skynet.start(function()
	local f, err = io.open(path)
	print("DATA " .. (f and f:read("l") or tostring(err)))
	local ok, why = pcall(require("skynet.snax").interface, "counter")
	print("SNAX " .. (ok and "read" or tostring(why)))
	local made, stm_why = pcall(require("skynet.stm").new, "x")
	print("STM " .. (made and "made" or tostring(stm_why)))
	local shared, share_why = pcall(require("skynet.core").share, "create", skynet.packstring({ 1 }))
	print("SHARE " .. (shared and "made" or tostring(share_why)))
end)
