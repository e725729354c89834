-- A reader for test_sharetable.lua: QUERY name, SPIN (reads in a loop until UPDATE),
-- UPDATE name (answers the version and the sword's attack after sharetable.update),
-- READ name i (answers t[i].name), MEMORY (its linear memory).
local skynet = require "skynet"
local sharetable = require "skynet.sharetable"
local memory = require "skynet.memory"

local t
local spinning = false

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, name, i)
		if cmd == "QUERY" then
			t = sharetable.query(name)
			skynet.retpack(t.version)
		elseif cmd == "SPIN" then
			spinning = true
			while spinning do
				local _ = t.sword.attack + t.version
				skynet.yield()
			end
		elseif cmd == "UPDATE" then
			spinning = false
			sharetable.update(name)
			skynet.retpack(t.version, t.sword.attack)
		elseif cmd == "READ" then
			skynet.retpack(sharetable.query(name)[i].name)
		elseif cmd == "MEMORY" then
			collectgarbage()
			skynet.retpack(memory.current())
		end
	end)
end)
