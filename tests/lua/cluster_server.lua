-- Cluster test (tests/blackbox/cluster.rs): the service other nodes call, registered as
-- "@echo" and bound to ".echo". ECHO answers its arguments; FAIL raises; SLOW ti answers
-- after ti centiseconds; HOLD i n answers once n of them wait, in reverse order of i;
-- BIG n answers a string of n bytes; SIZE s answers #s; WRITE text writes text to stdout
-- (WASI, on whichever thread runs the message); SPIN cs keeps the CPU busy cs centiseconds; NOTE n records one-way notes;
-- NOTES answers how many arrived and how many out of order; RELAY node address ... calls
-- on to another node; HANDLE answers this service's address; LISTEN port opens the cluster
-- on 127.0.0.1 and answers where. With the arguments "listen [port]" it also opens the
-- cluster on 127.0.0.1 (port 0 or none: a free one) and logs `CLUSTER LISTENING ip:port`.
local skynet = require "skynet"
local cluster = require "skynet.cluster"
require "skynet.manager"

local notes, disorder, last = 0, 0, 0
local held, holding = {}, 0

local CMD = {}

function CMD.ECHO(...)
	return ...
end

function CMD.FAIL(why)
	error(why)
end

function CMD.SLOW(ti, tag)
	skynet.sleep(ti)
	return tag
end

function CMD.BIG(n)
	return string.rep("b", n)
end

function CMD.SIZE(s)
	return #s
end

function CMD.WRITE(text)
	io.write(text, "\n")
	io.flush()
	return true
end

function CMD.SPIN(cs)
	local stop = skynet.now() + cs
	while skynet.now() < stop do
	end
	return true
end

function CMD.NOTE(n)
	notes = notes + 1
	if n ~= last + 1 then
		disorder = disorder + 1
	end
	last = n
end

function CMD.NOTES()
	return notes, disorder
end

-- RELAY node address ...: this node calls another with the rest (a node that serves and
-- calls at once); a failure there fails this call, with the reason.
function CMD.RELAY(node, address, ...)
	return cluster.call(node, address, ...)
end

function CMD.HANDLE()
	return skynet.self()
end

function CMD.LISTEN(port)
	return cluster.open(port)
end

local mode, port = ...

skynet.start(function()
	skynet.dispatch("lua", function(session, _, cmd, ...)
		if cmd == "HOLD" then
			-- HOLD i n: no answer until the n-th arrives, then all, in reverse order of i
			local i, n = ...
			held[i] = skynet.response()
			holding = holding + 1
			if holding == n then
				for j = n, 1, -1 do
					held[j](true, j)
				end
				held, holding = {}, 0
			end
			return
		end
		local f = assert(CMD[cmd], cmd)
		if session == 0 then
			f(...)
		else
			skynet.retpack(f(...))
		end
	end)
	skynet.register(".echo")
	cluster.register("echo")
	if mode == "listen" then
		skynet.error("CLUSTER LISTENING " .. cluster.open(tonumber(port) or 0))
	end
end)
