-- A subscriber for test_multicast.lua: SUB channel, GOT [n] (waits until n arrived, then
-- answers what arrived), UNSUB, RAISE flag (its dispatch raises while set).
local skynet = require "skynet"

local got = {}
local channel
local raising = false
local waiting = {}

local function settle()
	for n, respond in pairs(waiting) do
		if #got >= n then
			respond(true, got)
			waiting[n] = nil
		end
	end
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, arg)
		-- required here, so that the service answers as soon as it is launched (the
		-- library's init calls multicastd; a request meanwhile would find no dispatch)
		local mc = require "skynet.multicast"
		if cmd == "SUB" then
			channel = mc.new {
				channel = arg,
				dispatch = function(c, source, tag, n, t)
					got[#got + 1] = { source = source, n = n, nested = t.nested }
					settle()
					if raising then
						error("this subscriber raises")
					end
				end,
			}
			channel:subscribe()
			skynet.ret(skynet.pack(true))
		elseif cmd == "GOT" then
			if arg and #got < arg then
				waiting[arg] = skynet.response()
			else
				skynet.ret(skynet.pack(got))
			end
		elseif cmd == "UNSUB" then
			channel:unsubscribe()
			skynet.ret(skynet.pack(true))
		elseif cmd == "RAISE" then
			raising = arg
			skynet.ret(skynet.pack(true))
		end
	end)
end)
