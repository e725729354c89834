-- A reader for test_sharedata.lua: GET name answers obj.b.c of the sharedata object.
local skynet = require "skynet"
local sharedata = require "skynet.sharedata"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, name)
		local object = sharedata.query(name)
		skynet.retpack(object.b.c)
	end)
end)
