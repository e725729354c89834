-- Upgrade test: new code that cannot take the old code's state (the upgrade must fail).
local skynet = require "skynet"
local state = skynet.upgraded()
if state then
	error("this code cannot take the old state")
end
skynet.start(function() end)
