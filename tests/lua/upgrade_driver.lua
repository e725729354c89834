-- Upgrade test: UPGRADES target n upgrades the target n times, alternating its code between
-- upgrade_v2 and upgrade_v1, and answers the outcomes that were not "restored" (empty when
-- all were) and the longest upgrade in milliseconds; TRY target name [args...] answers what
-- one upgrade to `name` gives: true and its outcome, or false and the error.
local skynet = require "skynet"

local CMD = {}

function CMD.UPGRADES(target, n)
	local unexpected = {}
	local longest = 0
	for i = 1, n do
		local name = i % 2 == 1 and "upgrade_v2" or "upgrade_v1"
		local started = skynet.hpc()
		local ok, kind, detail = pcall(skynet.upgrade, target, name)
		longest = math.max(longest, (skynet.hpc() - started) // 1000000)
		if not ok or kind ~= "restored" then
			unexpected[#unexpected + 1] = string.format("%d %s: %s %s", i, name, tostring(kind), tostring(detail))
		end
		skynet.sleep(1)
	end
	return unexpected, longest
end

-- TIMES target n name1 name2: n upgrades alternating between name1 and name2, a tick apart;
-- the milliseconds each took as seen here (request to outcome), and the failures.
function CMD.TIMES(target, n, name1, name2)
	local times, failures = {}, {}
	for i = 1, n do
		local started = skynet.hpc()
		local ok, kind = pcall(skynet.upgrade, target, i % 2 == 1 and name1 or name2)
		times[i] = (skynet.hpc() - started) / 1e6
		if not ok or kind ~= "restored" then
			failures[#failures + 1] = tostring(kind)
		end
		skynet.sleep(1)
	end
	return times, failures
end

function CMD.TRY(target, name, ...)
	local results = table.pack(pcall(skynet.upgrade, target, name, ...))
	local words = {}
	for i = 2, results.n do
		words[#words + 1] = tostring(results[i])
	end
	return results[1], table.concat(words, " ")
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.retpack(CMD[cmd](...))
	end)
end)
