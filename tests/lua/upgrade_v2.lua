-- Upgrade test: version 2 of the counter (lib/upgrade_counter.lua).
require "upgrade_counter"(2)
