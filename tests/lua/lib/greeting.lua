-- A module found along lua_path by tests/lua/args.lua.
return { text = "hello from lib" }
