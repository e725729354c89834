-- Loads sprotoloader's slot 1 and encodes with it (test_sproto's other service).
local skynet = require "skynet"
local loader = require "sprotoloader"

skynet.start(function()
	skynet.dispatch("lua", function()
		local sp = loader.load(1)
		local e = sp:encode("Person", { name = "Alice", age = 13, marital = false })
		skynet.ret(skynet.pack((e:gsub(".", function(c) return string.format("%02x", c:byte()) end))))
	end)
end)
