-- Same-run comparison with skynet ("vs-skynet"): one of the fan-in's clients. RUN echo n
-- makes n sequential calls to echo, then answers.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, _, echo, n)
		for i = 1, n do
			skynet.call(echo, "lua", "ECHO", i)
		end
		skynet.ret(skynet.pack(n))
	end)
end)
