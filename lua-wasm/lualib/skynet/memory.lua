-- skynet.memory in wasm: skynet reports C memory (jemalloc); a skywasm service's memory is
-- its wasm linear memory, so these report that, read by the host (`MEMINFO`): `total` and
-- `block` over every service (an untrusted tenant's own only), `info` per service,
-- `current` for this one. There is no jemalloc: `jestat` gives the wasm figures under
-- jemalloc's names, and heap profiling (`profactive`, `dumpheap`) does not exist.
local core = require "skynet.core"

local memory = {}

-- address -> bytes of linear memory, for every service this one may see
function memory.info()
	local info = {}
	for address, bytes in string.gmatch(core.command("MEMINFO") or "", ":(%x+) (%d+)") do
		info[tonumber(address, 16)] = math.tointeger(tonumber(bytes))
	end
	return info
end

-- bytes of linear memory of all those services, and how many memories (blocks) that is
local function sum()
	local total, blocks = 0, 0
	for _, bytes in pairs(memory.info()) do
		total = total + bytes
		blocks = blocks + 1
	end
	return total, blocks
end

function memory.total()
	return (sum())
end

function memory.block()
	local _, blocks = sum()
	return blocks
end

-- this service's linear memory, in bytes
function memory.current()
	return core.memory_size()
end

local function dump_lines()
	local lines = {}
	local total, blocks = 0, 0
	for address, bytes in pairs(memory.info()) do
		lines[#lines + 1] = string.format(":%08x %gK", address, bytes / 1024)
		total, blocks = total + bytes, blocks + 1
	end
	table.sort(lines)
	lines[#lines + 1] = string.format("Total memory: %d bytes in %d wasm memories", total, blocks)
	return lines
end

-- Writes each service's memory and the total to the log.
function memory.dumpinfo()
	for _, line in ipairs(dump_lines()) do
		core.error(line)
	end
end

memory.dump = memory.dumpinfo

-- jemalloc's statistics names, answered with the wasm memory of the visible services.
function memory.jestat()
	local total = sum()
	return { ["stats.allocated"] = total, ["stats.active"] = total }
end

function memory.mallctl(name)
	local value = memory.jestat()[name]
	if value == nil then
		error(string.format("mallctl %s: skywasm has no jemalloc (stats.allocated and stats.active are known)", tostring(name)))
	end
	return value
end

-- Heap profiling is jemalloc's; wasm services have none: never active.
function memory.profactive(active)
	if active then
		error("heap profiling does not exist in skywasm (memory.info shows each service's wasm memory)")
	end
	return false
end

-- jemalloc's heap dump: here, each service's memory, written to the log.
function memory.dumpheap()
	memory.dumpinfo()
end

return memory
