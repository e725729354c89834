-- The config's `preload`: runs before every Lua service, with the service's arguments.
print("preload " .. table.concat({ ... }, " "))
