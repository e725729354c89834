-- skynet.stm: a value one service writes and others read without a message per change, as
-- skynet's. `stm.new(msg, sz)` (or a string) makes a writer; calling it, `w(msg, sz)`,
-- replaces the bytes; `stm.copy(w)` is a reference another service can receive (it travels
-- in a message), which `stm.newcopy(ref)` turns into a reader; calling the reader,
-- `r(f [, ud])`, returns `true, f(bytes, size, ud)` when the bytes changed since its last
-- read, or `false`.
--
-- skywasm: the bytes are held once by the host (services share no memory); a reader's `f`
-- gets them as a Lua string and its length (skynet.unpack takes either). Only trusted
-- services may use it. What a service holds goes when it ends, as its VM's collector
-- would let go of it in skynet.
local core = require "skynet.core"

local stm = {}

local writer_meta = {}
writer_meta.__index = writer_meta

function writer_meta:__call(msg, sz)
	core.stm_update(self.id, msg, sz)
end

function writer_meta:__gc()
	if self.id then
		core.stm_release(self.id, true)
		self.id = nil
	end
end

function stm.new(msg, sz)
	return setmetatable({ id = core.stm_new(msg, sz) }, writer_meta)
end

-- A reference for another service's stm.newcopy (it keeps the object alive until then).
function stm.copy(writer)
	return core.stm_copy(assert(writer.id, "stm: the writer is closed"))
end

local reader_meta = {}
reader_meta.__index = reader_meta

function reader_meta:__call(f, ud)
	assert(type(f) == "function", "stm reader: a function expected")
	local version, bytes = core.stm_read(self.ref, self.version)
	if not version then
		-- nil: nothing new; false: the writer let go
		return false
	end
	self.version = version
	return true, f(bytes, #bytes, ud)
end

function reader_meta:__gc()
	if self.ref then
		core.stm_release(self.ref, false)
		self.ref = nil
	end
end

function stm.newcopy(ref)
	return setmetatable({ ref = core.stm_adopt(ref), version = 0 }, reader_meta)
end

return stm
