-- skynet.cluster (skynet's lualib/skynet/cluster.lua): calling services of other nodes in
-- skynet's cluster protocol. The network side is the host's native gateway, reached through
-- the `clusterd` service (docs/cluster.md).
--
-- A failed call raises `call failed: <why>`: `network: ...` (the connection could not be
-- made or broke), `remote error from node ...: <the remote's reason>`, `timeout: ...`,
-- `node ... is down`, `unknown node ...`.
local skynet = require "skynet"
require "skynet.manager"

local cluster = {}

local clusterd

-- The native `clusterd` service, started on first use (skynet starts its Lua clusterd with
-- uniqueservice; here it is a built-in module bound to `.clusterd`).
local function service()
	if clusterd == nil then
		clusterd = skynet.localname(".clusterd") or skynet.launch("clusterd")
			or skynet.localname(".clusterd") -- another service started it meanwhile
		if clusterd == nil then
			error("cluster: clusterd cannot be started", 3)
		end
	end
	return clusterd
end

-- Calls `address` (a handle, "@name" registered there, or a ".name") on `node`; what it
-- returns. Waits as long as the node-wide `cluster_timeout` allows (by default: until the
-- reply comes or the connection breaks).
-- A traced caller's tag goes along (skynet's trace packet), as skynet's clustersender does.
local function request(node, address, msg, ti)
	return skynet.rawcall(service(), "lua", skynet.pack("req", node, address, msg, ti or 0, skynet.tracetag()))
end

function cluster.call(node, address, ...)
	return skynet.unpack(request(node, address, skynet.packstring(...)))
end

-- skywasm: cluster.call with a time limit of `ti` centiseconds (`call failed: timeout: ...`
-- past it; a late reply is dropped).
function cluster.call_timeout(ti, node, address, ...)
	return skynet.unpack(request(node, address, skynet.packstring(...), math.tointeger(ti) or 0))
end

-- A one-way message; pushes to a node before it is connected are queued in order.
function cluster.send(node, address, ...)
	skynet.send(service(), "lua", "push", node, address, skynet.packstring(...))
end

-- The raw forms, for proxies: `msg` is already packed.
function cluster.rawcall(node, address, msg)
	return request(node, address, msg)
end

function cluster.rawsend(node, address, msg)
	skynet.send(service(), "lua", "push", node, address, msg)
end

-- Listens for other nodes: `cluster.open(port [, address])` (on 127.0.0.1 unless an address
-- is given; skynet listens on 0.0.0.0) or `cluster.open(nodename)` (its address in the node
-- table). Returns the bound "ip:port".
function cluster.open(port, address)
	if type(port) == "string" and not tonumber(port) then
		return skynet.call(service(), "lua", "listen_node", port)
	end
	return skynet.call(service(), "lua", "listen", address or "127.0.0.1", tonumber(port))
end

-- Replaces the node table with `config` (`name = "ip:port" | false`, `__nowaiting = true`),
-- or reads the config's `cluster` file again.
function cluster.reload(config)
	return skynet.call(service(), "lua", "reload", config)
end

-- A local service that forwards every message to `address` of `node`:
-- cluster.proxy(node, address), cluster.proxy("node@name") or cluster.proxy("node.name").
function cluster.proxy(node, name)
	if name == nil then
		node, name = node:match("^([^@.]+)([@.].+)")
		if name == nil then
			error("Invalid name " .. tostring(node), 2)
		end
	end
	return skynet.call(service(), "lua", "proxy", node, name)
end

-- Publishes `address` (default: this service) to other nodes as "@name".
function cluster.register(name, address)
	assert(type(name) == "string", "cluster.register: a name expected")
	return skynet.call(service(), "lua", "register", name, address)
end

function cluster.unregister(name)
	assert(type(name) == "string", "cluster.unregister: a name expected")
	return skynet.call(service(), "lua", "unregister", name)
end

-- The handle `node` has registered as "@name" (raises when it has none).
function cluster.query(node, name)
	return cluster.call(node, 0, name)
end

-- skynet's API has it: the service that sends to `node` (here, for every node, clusterd).
function cluster.get_sender(node)
	return service()
end

function cluster.snax()
	error("cluster.snax: snax is not supported in skywasm", 2)
end

return cluster
