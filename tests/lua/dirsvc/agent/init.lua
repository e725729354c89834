-- A service found through a directory pattern (`.../dirsvc/?/init.lua`): its own module
-- `helper.lua` lives next to it and `require` finds it before `lua_path`.
print("path " .. SERVICE_PATH)
local helper = require "helper"
print("helper " .. helper.text)
print("lib " .. (require "greeting").text)
