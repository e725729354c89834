-- Upgrade test (tests/blackbox/upgrade.rs): a counter service whose code comes in versions
-- (upgrade_v1.lua, upgrade_v2.lua). INC answers the code's version, the count and the
-- generation (how many times code started at this address); NOTE n checks that each
-- sender's notes arrive in order; STATE answers count, disorder, notes per sender,
-- generation and version; FAIL_HOOK makes the upgrade hook fail; BALLAST n adds n bytes
-- to the state (for the upgrade benchmark). The state survives
-- upgrades through skynet.on_upgrade and skynet.upgraded.
local skynet = require "skynet"

return function(version)
	local state = skynet.upgraded() or { count = 0, disorder = 0, notes = {}, generation = 0 }
	state.generation = state.generation + 1
	skynet.on_upgrade(function()
		return state, 1
	end)
	skynet.start(function()
		skynet.dispatch("lua", function(_, source, cmd, n)
			if cmd == "INC" then
				state.count = state.count + 1
				skynet.retpack(version, state.count, state.generation)
			elseif cmd == "NOTE" then
				local last = state.notes[source] or 0
				if n ~= last + 1 then
					state.disorder = state.disorder + 1
				end
				state.notes[source] = n
			elseif cmd == "STATE" then
				skynet.retpack(state.count, state.disorder, state.notes, state.generation, version)
			elseif cmd == "BALLAST" then
				state.ballast = string.rep("x", n)
				skynet.retpack(n)
			elseif cmd == "FAIL_HOOK" then
				skynet.on_upgrade(function()
					error("this hook fails")
				end)
				skynet.retpack(true)
			end
		end)
	end)
end
