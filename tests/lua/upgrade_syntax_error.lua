-- Upgrade test: new code that does not compile (the upgrade must fail, the old code carry on).
local skynet = require "skynet"
skynet.start(function(
