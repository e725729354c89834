-- sprotoparser: sproto schema text to the schema bundle sproto.new takes, the same bytes as
-- skynet's parser makes (written in Rust here: sproto.core.parse; skynet's uses lpeg).
local core = require "sproto.core"

local parser = {}

-- parse(text [, name]): the bundle; a schema error raises (name appears in syntax errors)
function parser.parse(text, name)
	return core.parse(text, name)
end

-- Prints a bundle in hex, 16 bytes a line, as skynet's does.
function parser.dump(str)
	local line = {}
	for i = 1, #str do
		line[#line + 1] = string.format("%02X ", str:byte(i))
		if i % 8 == 0 then
			if i % 16 == 0 then
				print(table.concat(line))
				line = {}
			else
				line[#line + 1] = "- "
			end
		end
	end
	print(table.concat(line))
end

return parser
