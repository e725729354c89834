-- sharedatad: the unique service behind skynet.sharedata (lualib skywasm/shareserver.lua).
local skynet = require "skynet"
local serve = require "skywasm.shareserver"

skynet.start(function()
	serve("sharedatad")
end)
