-- datasheetd: the unique service behind skynet.datasheet (lualib skywasm/shareserver.lua).
local skynet = require "skynet"
local server = require "skywasm.shareserver"

skynet.start(function()
	server.serve("datasheetd")
end)
