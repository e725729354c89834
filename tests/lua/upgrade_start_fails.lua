-- Upgrade test: new code whose start function fails (the upgrade must fail).
local skynet = require "skynet"
skynet.start(function()
	error("the new start fails")
end)
