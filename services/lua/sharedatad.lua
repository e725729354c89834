-- sharedatad: the unique service behind skynet.sharedata (lualib skywasm/shareserver.lua).
local skynet = require "skynet"
local server = require "skywasm.shareserver"

skynet.start(function()
	server.serve("sharedatad")
end)
