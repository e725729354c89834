-- skynet.codecache (skynet.cache): skynet's snlua shares compiled Lua files between services
-- until `clear`. snlua in skywasm has no such cache — the host reads a script or module
-- afresh at every load, so a changed file is what the next service loads — and this API is
-- accepted for the code that calls it: `clear` has nothing to drop, `mode` keeps the mode
-- it is given ("ON", "OFF" or "EXIST") and returns the previous one.
local codecache = {}

local current = "ON"
local MODES = { ON = true, OFF = true, EXIST = true }

function codecache.clear() end

function codecache.mode(mode)
	local previous = current
	if mode ~= nil then
		if not MODES[mode] then
			error("Invalid mode " .. tostring(mode))
		end
		current = mode
	end
	return previous
end

return codecache
