-- A key/value service, like skynet's examples/simpledb.lua: GET key, SET key value (answers
-- the old value), COUNT.
local skynet = require "skynet"

local db = {}
local count = 0
local command = {}

function command.GET(key)
	return db[key]
end

function command.SET(key, value)
	local old = db[key]
	if old == nil and value ~= nil then
		count = count + 1
	elseif old ~= nil and value == nil then
		count = count - 1
	end
	db[key] = value
	return old
end

function command.COUNT()
	return count
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = command[cmd]
		if f then
			skynet.ret(skynet.pack(f(...)))
		else
			error(string.format("simpledb: unknown command %s", tostring(cmd)))
		end
	end)
end)
