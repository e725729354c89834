-- Benchmark: an idle Lua service (what "lua-spawn" starts many of).
local skynet = require "skynet"

skynet.start(function() end)
