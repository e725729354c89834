-- The OTLP test's harbor nodes: "master" names an echo service `OTLPECHO` for the whole
-- network; "slave" waits for the name, calls it once and logs `HARBOR CALLED <answer>`.
local skynet = require "skynet"
local harbor = require "skynet.harbor"

local mode = ...

skynet.start(function()
	if mode == "master" then
		harbor.globalname("OTLPECHO", skynet.newservice("demo_echo"))
		skynet.error("HARBOR ECHO READY")
	else
		local echo = harbor.queryname("OTLPECHO")
		skynet.error("HARBOR CALLED " .. tostring(skynet.call(echo, "lua", "PING")))
	end
end)
