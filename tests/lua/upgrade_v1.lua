-- Upgrade test: version 1 of the counter (lib/upgrade_counter.lua).
require "upgrade_counter"(1)
