-- skynet.crypt and md5, against values printed by real skynet f19d1605 (its testcrypt.lua
-- vectors, and lua-crypt.c / md5.so outputs of a script run there).
local skynet = require "skynet"
local crypt = require "skynet.crypt"
local md5 = require "md5"
local check = require "check"

local hex = crypt.hexencode

skynet.start(function()
	-- DES, skynet's testcrypt.lua
	local key = "12345678"
	local function des(text, padding)
		return crypt.base64encode(crypt.desencode(key, text, crypt.padding[padding or "iso7816_4"]))
	end
	check.eq("desencode, iso7816_4 (the default)", des "hello world", "KNugLrX23UcGtcVlk9y+LA==")
	check.eq("desdecode", crypt.desdecode(key, crypt.base64decode "KNugLrX23UcGtcVlk9y+LA=="), "hello world")
	local pkcs7 = { [""] = "/rlZt9RkL8s=", ["1"] = "g6AtgJul6q0=", ["1234567"] = "mYo+BYIT41M=",
		["12345678"] = "ltACiHjVjIn+uVm31GQvyw==" }
	for text, want in pairs(pkcs7) do
		check.eq("desencode pkcs7 " .. text, des(text, "pkcs7"), want)
		check.eq("desdecode pkcs7 " .. text, crypt.desdecode(key, crypt.base64decode(want), crypt.padding.pkcs7), text)
	end
	check.eq("padding modes", crypt.padding.iso7816_4 .. crypt.padding.pkcs7, "01")
	check.raises("a key of 7 bytes", "Invalid key size 7, need 8 bytes", crypt.desencode, "1234567", "x")
	check.raises("cipher text of 9 bytes", "Invalid des crypt text length 9", crypt.desdecode, key, "123456789")
	check.raises("cipher text that does not decrypt", "Invalid des crypt text", crypt.desdecode, "abcdefgh",
		crypt.desencode(key, "1234567", crypt.padding.pkcs7), crypt.padding.pkcs7)
	check.raises("an unknown padding mode", "Invalid padding mode 5", crypt.desencode, key, "x", 5)

	-- skynet's own algorithms
	local x, y = "abcdefgh", "12345678"
	check.eq("hashkey", hex(crypt.hashkey "hello world"), "c1c8513506e36bbc")
	check.eq("hmac64", hex(crypt.hmac64(x, y)), "fe3bcdd7a8bb7ce5")
	check.eq("hmac64_md5", hex(crypt.hmac64_md5(x, y)), "b390b2dafc9e40da")
	local m = md5.sum((x .. y):rep(3))
	check.eq("hmac64_md5 is md5's halves xored", crypt.hmac64_md5(x, y), crypt.xor_str(m:sub(1, 8), m:sub(9, 16)))
	check.eq("hmac_hash", hex(crypt.hmac_hash(y, "hello")), "c7c836eeffbdd948")
	check.eq("dhexchange", hex(crypt.dhexchange(x)), "c3c0880df34049bd")
	check.eq("dhsecret", hex(crypt.dhsecret(x, y)), "395a7fd768b78782")
	check.raises("hmac64 of a short x", "Invalid uint64 x", crypt.hmac64, "short", y)
	check.raises("dhexchange of 0", "Can't be 0", crypt.dhexchange, string.rep("\0", 8))
	check.raises("dhexchange of a short key", "Invalid dh uint64 key", crypt.dhexchange, "k")

	-- a login's key exchange, as skynet's loginserver does it
	local client_key, server_key = crypt.randomkey(), crypt.randomkey()
	check.eq("randomkey is 8 bytes", #client_key, 8)
	check.ok("randomkeys differ", client_key ~= server_key)
	local secret1 = crypt.dhsecret(crypt.dhexchange(server_key), client_key)
	local secret2 = crypt.dhsecret(crypt.dhexchange(client_key), server_key)
	check.eq("both sides agree on the secret", secret1, secret2)
	local challenge = crypt.randomkey()
	check.eq("hmac64 of the challenge agrees", crypt.hmac64(challenge, secret1), crypt.hmac64(challenge, secret2))

	-- codecs
	check.eq("base64encode", crypt.base64encode "hello", "aGVsbG8=")
	check.eq("base64decode without padding", crypt.base64decode "aGVsbG8", "hello")
	check.eq("base64decode skips a newline inside", crypt.base64decode "aGVs\nbG8=", "hello")
	check.raises("base64decode of garbage", "Invalid base64 text", crypt.base64decode, "a===")
	check.eq("hexencode", hex "\0\255", "00ff")
	check.eq("hexdecode", crypt.hexdecode "00ff", "\0\255")
	check.raises("hexdecode of odd length", "Invalid hex text size 3", crypt.hexdecode, "abc")
	check.raises("hexdecode of a non-digit", "Invalid hex text", crypt.hexdecode, "zz")
	check.eq("xor_str repeats its key", crypt.xor_str("abc", "\1"), "`cb")
	check.raises("xor_str with an empty key", "Can't xor empty string", crypt.xor_str, "abc", "")
	check.eq("sha1", hex(crypt.sha1 "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d")
	check.eq("sha1 of 10000 bytes", hex(crypt.sha1(string.rep("a", 10000))), "a080cbda64850abb7b7f67ee875ba068074ff6fe")
	check.eq("hmac_sha1", hex(crypt.hmac_sha1("key", "The quick brown fox jumps over the lazy dog")),
		"de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")
	check.eq("client.crypt is the same library", (require "client.crypt").sha1("abc"), crypt.sha1 "abc")

	-- md5
	check.eq("md5.sumhexa", md5.sumhexa "", "d41d8cd98f00b204e9800998ecf8427e")
	check.eq("md5.sum", hex(md5.sum "abc"), "900150983cd24fb0d6963f7d28e17f72")
	check.eq("md5.hmacmd5", md5.hmacmd5("data", "key"), "9d5c73ef85594d34ec4438b7c97e51d8")
	local sealed = md5.crypt("a message longer than sixteen bytes", "key", "seed")
	check.eq("md5.crypt", hex(sealed),
		"0473656564cec524be52b9e45e90b8e2e8b7023f668f42315374cf0e607b4185e3d6e6f8d96e5e7d")
	check.eq("md5.decrypt", md5.decrypt(sealed, "key"), "a message longer than sixteen bytes")
	check.eq("md5.crypt seeds itself with the time", md5.decrypt(md5.crypt("plain", "k"), "k"), "plain")
	check.raises("md5.decrypt of garbage", "invalid cyphered string", md5.decrypt, "\9ab", "key")
	check.raises("md5.exor of unequal lengths", "lengths must be equal", md5.exor, "ab", "a")
	check.eq("md5.exor", md5.exor("ab", "\1\1"), "`c")

	-- big inputs go through Lua's allocator and its limit
	local big = string.rep("x", 1 << 20)
	check.eq("a megabyte round-trips through base64", crypt.base64decode(crypt.base64encode(big)), big)
	check.eq("and through DES", crypt.desdecode(key, crypt.desencode(key, big)), big)
	check.done()
end)
