-- Looks up the names it is given and logs what it got (the untrusted-tenant DNS test).
local skynet = require "skynet"
local dns = require "skynet.dns"

local names = { ... }

skynet.start(function()
	for _, name in ipairs(names) do
		local ok, ip = pcall(dns.resolve, name)
		skynet.error(string.format("DNS %s %s %s", name, ok and "ok" or "refused", tostring(ip)))
	end
end)
