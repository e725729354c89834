-- Test helpers for Lua test services: each check prints "PASS name" or "FAIL name: why";
-- `done` prints the summary and stops the node (skynet.abort).
local skynet = require "skynet"
require "skynet.manager"

local check = { passed = 0, failed = 0 }

local function show(v)
	if type(v) == "string" then
		return string.format("%q", v)
	end
	return tostring(v) .. (math.type(v) and ("(" .. math.type(v) .. ")") or "")
end

function check.ok(name, condition, detail)
	if condition then
		check.passed = check.passed + 1
		print("PASS " .. name)
	else
		check.failed = check.failed + 1
		print("FAIL " .. name .. (detail and (": " .. tostring(detail)) or ""))
	end
end

-- Equal values, with the same Lua number subtype.
function check.eq(name, got, want)
	local same = got == want and math.type(got) == math.type(want)
	check.ok(name, same, "got " .. show(got) .. ", want " .. show(want))
end

-- The same values, count included (nil holes count).
function check.values(name, got, want)
	if got.n ~= want.n then
		check.ok(name, false, "got " .. got.n .. " values, want " .. want.n)
		return
	end
	for i = 1, want.n do
		if got[i] ~= want[i] or math.type(got[i]) ~= math.type(want[i]) then
			check.ok(name, false, "value " .. i .. ": got " .. show(got[i]) .. ", want " .. show(want[i]))
			return
		end
	end
	check.ok(name, true)
end

-- `f` raises an error whose text contains `pattern` (plain text).
function check.raises(name, pattern, f, ...)
	local ok, err = pcall(f, ...)
	check.ok(name, not ok and tostring(err):find(pattern, 1, true) ~= nil,
		ok and "no error" or ("error was " .. tostring(err)))
end

-- Polls f (bounded, 10 s: a loaded machine may take seconds) until it answers true; its
-- last answer.
function check.wait_until(f)
	local deadline = skynet.now() + 1000
	while skynet.now() < deadline do
		if f() then
			return true
		end
		skynet.sleep(2)
	end
	return f()
end

function check.done()
	print(string.format("DONE %d passed, %d failed", check.passed, check.failed))
	skynet.abort()
end

return check
