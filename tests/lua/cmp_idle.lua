-- Same-run comparison with skynet ("vs-skynet"): an idle service that answers a call.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function()
		skynet.ret(skynet.pack(true))
	end)
end)
