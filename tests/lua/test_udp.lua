-- skynet.socket UDP over loopback, IPv4 and IPv6: an echo server answering each sender at
-- the address its datagram came from, a dialled client, udp_address, netstat.
local skynet = require "skynet"
local socket = require "skynet.socket"
local check = require "check"

-- The local port of UDP socket `id`, from netstat.
local function port_of(id)
	for _, s in ipairs(socket.netstat()) do
		if s.id == id then
			return tonumber(s.address:match(":(%d+)$")), s.type
		end
	end
end

local function echo_round(family, host)
	local server
	server = socket.udp(function(data, from)
		socket.sendto(server, from, "echo:" .. data)
	end, host, 0)
	local port, kind = port_of(server)
	check.ok(family .. ": netstat shows the UDP socket and its port", kind == "UDP" and port and port > 0,
		tostring(kind) .. " " .. tostring(port))

	local replies, sender, waiter = {}, nil, coroutine.running()
	local client = socket.udp_dial(host, port, function(data, from)
		replies[#replies + 1] = data
		sender = from
		if #replies == 2 then
			skynet.wakeup(waiter)
		end
	end)
	socket.write(client, "one")
	socket.write(client, "two")
	skynet.wait(waiter)
	table.sort(replies)
	check.eq(family .. ": every datagram is echoed", table.concat(replies, " "), "echo:one echo:two")
	local ip, from_port = socket.udp_address(sender)
	check.ok(family .. ": udp_address gives the server's ip and port", ip == host and from_port == port,
		tostring(ip) .. " " .. tostring(from_port))
	socket.close(client)
	socket.close(server)
end

skynet.start(function()
	echo_round("IPv4", "127.0.0.1")
	echo_round("IPv6", "::1")
	check.raises("a bad UDP address raises", "socket.udp", socket.udp, function() end, "not an address", 1)
	check.done()
end)
