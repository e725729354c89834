-- skynet.dns: host names to addresses. skynet's sends DNS queries itself over UDP; here the
-- host looks names up for the service (socket.resolve: /etc/hosts, the system's DNS
-- servers, the node's `dns_hosts` file), asynchronously, under the tenant's `connect`
-- rights. Answers are kept for a minute, as a DNS answer's time to live would keep them.
local skynet = require "skynet"
local socket = require "skynet.socket"

local dns = {}

local TTL = 60 * 100 -- centiseconds
-- the most names kept (past it the cache starts afresh)
local MAX_CACHED = 1024
local cache = { [false] = {}, [true] = {} }
local cached = 0

-- Accepted for skynet's API: lookups always go through the host's resolver.
function dns.server(server, port)
	return server, port
end

function dns.flush()
	cache[false], cache[true] = {}, {}
	cached = 0
end

local function copy(ips)
	return table.move(ips, 1, #ips, 1, {})
end

-- The first address of `name` and all of them (IPv6 when `ipv6`); raises when there is
-- none.
function dns.resolve(name, ipv6)
	ipv6 = ipv6 and true or false
	local hit = cache[ipv6][name]
	if hit and hit.expires > skynet.now() then
		return hit.ips[1], copy(hit.ips)
	end
	local ips = socket.resolve(name, ipv6)
	if not hit then
		if cached >= MAX_CACHED then
			dns.flush()
		end
		cached = cached + 1
	end
	cache[ipv6][name] = { ips = copy(ips), expires = skynet.now() + TTL }
	return ips[1], ips
end

return dns
