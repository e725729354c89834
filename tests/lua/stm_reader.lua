-- A service for test_stm.lua: TAKE ref makes a reader and reads; READ and RAW read again
-- (RAW: the bytes and size as given to the function); WRITE value makes a writer here and
-- answers a copy of it.
local skynet = require "skynet"
local stm = require "skynet.stm"

local reader, writer

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, arg)
		if cmd == "TAKE" then
			reader = stm.newcopy(arg)
			skynet.retpack(reader(skynet.unpack))
		elseif cmd == "READ" then
			skynet.retpack(reader(skynet.unpack))
		elseif cmd == "RAW" then
			skynet.retpack(reader(function(bytes, size) return bytes, size end))
		elseif cmd == "WRITE" then
			writer = stm.new(skynet.pack(arg))
			skynet.retpack(stm.copy(writer))
		end
	end)
end)
