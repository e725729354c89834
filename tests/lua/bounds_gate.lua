-- Bounds test: a gate that reads every connection to its end, counting bytes. LISTEN
-- answers the port; STARTED how many connections it reads; SPIN ms keeps the service busy
-- (its mailbox fills meanwhile); RECEIVED answers the bytes read so far.
local skynet = require "skynet"
local socket = require "skynet.socket"

local received = 0
local started = 0

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ms)
		if cmd == "LISTEN" then
			local listener, _, port = socket.listen("127.0.0.1", 0)
			socket.start(listener, function(id)
				socket.start(id)
				started = started + 1
				skynet.fork(function()
					while true do
						local data = socket.read(id)
						if not data then
							break
						end
						received = received + #data
					end
				end)
			end)
			skynet.ret(skynet.pack(port))
		elseif cmd == "SPIN" then
			local start = skynet.now()
			while skynet.now() - start < ms // 10 do
			end
			skynet.ret(skynet.pack(true))
		elseif cmd == "STARTED" then
			skynet.ret(skynet.pack(started))
		elseif cmd == "RECEIVED" then
			skynet.ret(skynet.pack(received))
		end
	end)
end)
