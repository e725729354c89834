-- skynet.db.redis.crc16: the checksum Redis Cluster hashes keys with, CRC-16/XMODEM
-- (polynomial 0x1021, initial value 0, bits not reflected, no final xor), as a function of
-- a string: crc16(key) % 16384 is the key's slot. crc16 "123456789" == 0x31C3.

local sbyte = string.byte
local tostring = tostring
local type = type

-- the CRC of each byte on its own, so hashing takes one lookup per byte instead of 8 shifts
local after = {}
for b = 0, 255 do
	local crc = b << 8
	for _ = 1, 8 do
		if crc & 0x8000 ~= 0 then
			crc = ((crc << 1) ~ 0x1021) & 0xffff
		else
			crc = (crc << 1) & 0xffff
		end
	end
	after[b] = crc
end

return function(s)
	if type(s) ~= "string" then
		s = tostring(s)
	end
	local crc = 0
	for i = 1, #s do
		crc = ((crc << 8) & 0xffff) ~ after[(crc >> 8) ~ sbyte(s, i)]
	end
	return crc
end
