-- One side of a ping-pong pair. `pingpong pong` answers each "PING n" with a "PONG n" sent
-- back; `pingpong ping <pong address> <rounds>` starts the exchange and stops after rounds.
local skynet = require "skynet"

local role, peer, rounds = ...

skynet.start(function()
	skynet.dispatch("lua", function(_, source, what, n)
		if what == "PING" then
			skynet.error(string.format("pong: PING %d from %s", n, skynet.address(source)))
			skynet.send(source, "lua", "PONG", n)
		elseif what == "PONG" then
			skynet.error(string.format("ping: PONG %d", n))
			if n < tonumber(rounds) then
				skynet.send(tonumber(peer), "lua", "PING", n + 1)
			else
				skynet.error("ping: done after " .. n .. " rounds")
			end
		end
	end)
	if role == "ping" then
		skynet.send(tonumber(peer), "lua", "PING", 1)
	end
end)
