-- skynet.init: functions run before a service's start function, in the order registered;
-- registered after start has begun, a function runs at once.
local M = {}

local initfuncs = {}

function M.init(f, name)
	assert(type(f) == "function", "skynet.init needs a function")
	if initfuncs == nil then
		f()
	else
		initfuncs[#initfuncs + 1] = { f = f, name = name }
	end
end

function M.init_all()
	local funcs = initfuncs
	initfuncs = nil
	if funcs then
		for _, entry in ipairs(funcs) do
			entry.f()
		end
	end
end

return M
