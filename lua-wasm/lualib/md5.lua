-- skynet's `md5` module: the native `md5.core` (sum, sumhexa, exor, crypt, decrypt,
-- hmacmd5), returned as skynet's md5.lua returns its core.
return require "md5.core"
