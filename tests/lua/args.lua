-- Prints what the loader gave it: SERVICE_NAME, SERVICE_PATH, its arguments, and modules
-- found along lua_path.
print("name " .. SERVICE_NAME)
print("path " .. SERVICE_PATH)
local n = select("#", ...)
print("args " .. n .. " " .. table.concat({ ... }, " "))
local lib = require "greeting"
print("module " .. lib.text)
print("module again " .. tostring(require "greeting" == lib))
print("missing module " .. tostring((pcall(require, "no.such.module"))))
