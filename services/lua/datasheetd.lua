-- datasheetd: the unique service behind skynet.datasheet (lualib skywasm/shareserver.lua).
local skynet = require "skynet"
local serve = require "skywasm.shareserver"

skynet.start(function()
	serve("datasheetd")
end)
