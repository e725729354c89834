-- multicastd: the channels of skynet.multicast on this node, as skynet's (commands NEW,
-- DEL, SUB, USUB, PUB, and SUBR, USUBR, DELR between the multicastd of harbor nodes; a
-- channel id's low 8 bits are the harbor id of the node that made it). A publish to a
-- channel of this node goes to the local subscribers with one host call that holds the
-- body once (skynet.core.multicast), and to every other node with subscribers, whose
-- multicastd hands it to its own.
local skynet = require "skynet"
local core = require "skynet.core"
local datacenter = require "skynet.datacenter"

local self_address = skynet.self()
local harbor_id = skynet.harbor(self_address)

-- channel -> { subscribers = { handle = true }, count = n, dests = packed handles or nil }
local channels = {}
-- channel -> { harbor id = true }: other nodes with subscribers of a channel made here
local remote_nodes = {}
local next_id = harbor_id
local NORET = {}

-- the multicastd of each harbor node, as it registered in the datacenter
local node_address = setmetatable({}, {
	__index = function(t, node)
		local address = assert(datacenter.get("multicast", node))
		t[node] = address
		return address
	end,
})

local function owner(c)
	return c % 256
end

local function new_channel(c)
	local channel = { subscribers = {}, count = 0 }
	channels[c] = channel
	return channel
end

-- The subscribers' handles, packed for skynet.core.multicast (rebuilt after changes).
local function destinations(channel)
	local dests = channel.dests
	if not dests then
		local parts = {}
		for handle in pairs(channel.subscribers) do
			parts[#parts + 1] = string.pack("<I4", handle)
		end
		dests = table.concat(parts)
		channel.dests = dests
	end
	return dests
end

local command = {}

function command.NEW()
	while channels[next_id] do
		next_id = next_id + 256
	end
	local c = next_id
	new_channel(c)
	next_id = next_id + 256
	return c
end

-- from the owner node: a channel made there is gone
function command.DELR(_, c)
	channels[c] = nil
	return NORET
end

function command.DEL(_, c)
	local node = owner(c)
	if node ~= harbor_id then
		skynet.send(node_address[node], "lua", "DEL", c)
		return NORET
	end
	local remote = remote_nodes[c]
	channels[c] = nil
	remote_nodes[c] = nil
	if remote then
		for other in pairs(remote) do
			skynet.send(node_address[other], "lua", "DELR", c)
		end
	end
	return NORET
end

-- A message is forwarded with its publisher as the source while that publisher is on
-- this node; a harbor peer takes only its own addresses as sources, so what came from a
-- third node leaves here from this multicastd.
local function forward(node, c, source, msg)
	if skynet.harbor(source) ~= harbor_id then
		source = self_address
	end
	skynet.redirect(node_address[node], source, "multicast", c, msg)
end

local function publish(c, source, msg)
	local remote = remote_nodes[c]
	if remote then
		for node in pairs(remote) do
			forward(node, c, source, msg)
		end
	end
	local channel = channels[c]
	if channel and channel.count > 0 then
		core.multicast(source, c, destinations(channel), msg)
	end
end

function command.PUB(source, c, msg)
	assert(skynet.harbor(source) == harbor_id)
	local node = owner(c)
	if node ~= harbor_id then
		forward(node, c, source, msg)
	else
		publish(c, source, msg)
	end
end

-- another node's multicastd subscribes to a channel made here; true when there is none
function command.SUBR(source, c)
	if not channels[c] then
		return true
	end
	local node = skynet.harbor(source)
	assert(node ~= harbor_id and owner(c) == harbor_id)
	local remote = remote_nodes[c]
	if not remote then
		remote = {}
		remote_nodes[c] = remote
	end
	remote[node] = true
end

function command.SUB(source, c)
	local node = owner(c)
	if node ~= harbor_id and channels[c] == nil then
		if skynet.call(node_address[node], "lua", "SUBR", c) then
			return -- no such channel
		end
		-- the call yielded: another SUB may have made it meanwhile
		if channels[c] == nil then
			new_channel(c)
		end
	end
	local channel = channels[c]
	if channel and not channel.subscribers[source] then
		channel.subscribers[source] = true
		channel.count = channel.count + 1
		channel.dests = nil
	end
end

function command.USUBR(source, c)
	local node = skynet.harbor(source)
	assert(node ~= harbor_id)
	local remote = assert(remote_nodes[c])
	remote[node] = nil
	return NORET
end

function command.USUB(source, c)
	local channel = assert(channels[c])
	if channel.subscribers[source] then
		channel.subscribers[source] = nil
		channel.count = channel.count - 1
		channel.dests = nil
		local node = owner(c)
		if channel.count == 0 and node ~= harbor_id then
			channels[c] = nil
			skynet.send(node_address[node], "lua", "USUBR", c)
		end
	end
	return NORET
end

-- A publish forwarded by another node's multicastd: the session is the channel.
skynet.register_protocol {
	name = "multicast",
	id = skynet.PTYPE_MULTICAST,
	unpack = function(msg, sz)
		return skynet.tostring(msg, sz)
	end,
	dispatch = function(c, source, msg)
		skynet.ignoreret()
		publish(c, source, msg)
	end,
}

skynet.start(function()
	skynet.dispatch("lua", function(_, source, cmd, ...)
		local f = assert(command[cmd], cmd)
		local result = f(source, ...)
		if result ~= NORET then
			skynet.ret(skynet.pack(result))
		end
	end)
	assert(datacenter.set("multicast", harbor_id, self_address) == nil)
end)
