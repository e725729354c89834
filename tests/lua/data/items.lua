#!/usr/bin/env lua -- a first line starting with '#' is skipped, as luaL_loadfile does
-- A data table for test_data_files.lua.
return { sword = { attack = 10 }, shield = { defence = 5 }, source = who or "unset" }
