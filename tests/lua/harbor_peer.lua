-- Harbor test (tests/blackbox/harbor.rs): a service on each node, driven over "lua" by the
-- test. ECHO answers its arguments; SLOW ti answers after ti centiseconds; CALL address ...
-- calls another service (of any node) and answers `true, results...` or `false, error`;
-- SENDS address n sends NOTE 1..n one way, then asks NOTES, so they have all arrived when
-- it answers; NOTE i records a note, NOTES answers how many arrived and how many out of
-- order; INFLIGHT address n ti starts n calls of SLOW ti at address and answers at once,
-- RESULTS answers what came of them; STATUS answers the node's HARBOR command.
-- REGISTER name makes this service a global name; QUERYNAME name, LINK id, CONNECT id
-- are skynet.harbor's; DCSET key value and DCGET key use skynet.datacenter; GUNIQUE
-- script answers skynet.uniqueservice(true, script).
local skynet = require "skynet"
require "skynet.manager"
local harbor = require "skynet.harbor"
local datacenter = require "skynet.datacenter"

local notes, disorder, last = 0, 0, 0
local results = {}
local CMD = {}

function CMD.ECHO(...)
	return ...
end

function CMD.SLOW(ti, tag)
	skynet.sleep(ti)
	return tag
end

function CMD.CALL(address, ...)
	return pcall(skynet.call, address, "lua", ...)
end

function CMD.SENDS(address, n)
	for i = 1, n do
		skynet.send(address, "lua", "NOTE", i)
	end
	return pcall(skynet.call, address, "lua", "NOTES")
end

function CMD.NOTE(i)
	notes = notes + 1
	if i ~= last + 1 then
		disorder = disorder + 1
	end
	last = i
end

function CMD.NOTES()
	local n, d = notes, disorder
	notes, disorder, last = 0, 0, 0
	return n, d
end

function CMD.INFLIGHT(address, n, ti)
	results = {}
	for i = 1, n do
		skynet.fork(function()
			local ok, err = pcall(skynet.call, address, "lua", "SLOW", ti, i)
			results[#results + 1] = ok and "ok" or tostring(err)
		end)
	end
	return true
end

function CMD.REGISTER(name)
	skynet.register(name)
	return true
end

function CMD.QUERYNAME(name)
	return harbor.queryname(name)
end

function CMD.LINK(id)
	harbor.link(id)
	return "link down"
end

function CMD.CONNECT(id)
	harbor.connect(id)
	return "connected"
end

function CMD.DCSET(key, value)
	return datacenter.set(key, value)
end

function CMD.DCGET(key)
	return datacenter.get(key)
end

function CMD.GUNIQUE(script)
	return skynet.uniqueservice(true, script)
end

function CMD.STATUS()
	return require("skynet.core").command("HARBOR", "")
end

function CMD.RESULTS()
	return table.unpack(results)
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, command, ...)
		local f = assert(CMD[command], command)
		if command == "NOTE" then
			f(...)
		else
			skynet.ret(skynet.pack(f(...)))
		end
	end)
end)
