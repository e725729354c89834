-- A snax service for test_snax.lua: a counter with accept/response methods, init and exit.
local skynet = require "skynet"
local datacenter = require "skynet.datacenter"
local snax = require "skynet.snax"
-- found in snax/counter/, the service's own directory (before lua_path)
local helper = require "counter_helper"

local count = 0
local step = 1

function init(start, name)
	count = start
	datacenter.set("counter", name or "unnamed", "started")
end

function exit(why)
	datacenter.set("counter", "exit", why)
end

function accept.add(n)
	count = count + n * step
end

function accept.quit(why)
	snax.exit(why)
end

function response.get()
	return count
end

function response.slow_get(ticks)
	skynet.sleep(ticks)
	return count
end

function response.fail()
	error("counter refuses")
end

function response.helper()
	return helper.name()
end

function response.whoami()
	return tostring(snax.self()), SERVICE_NAME, SERVICE_PATH:match("snax/counter/$") ~= nil
end
