//! `skynet.crypt` (also `client.crypt`, as skynet's C module is named for clients) and
//! `md5.core`: Lua bindings of the algorithms in the `skywasm-codecs` crate.

use std::ffi::c_int;

use mlua_sys as ffi;
use skywasm_codecs::crypt::{self, CryptError, Padding};
use skywasm_codecs::md5;

use crate::native::{
    bytes_arg, new_library, opt_bytes_arg, push_bytes, push_owned, push_result, raise,
};

/// Opens `skynet.crypt`: its functions and the `padding` table of mode numbers.
pub(crate) unsafe extern "C-unwind" fn open_crypt(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        new_library(
            l,
            &[
                (c"hashkey", hashkey),
                (c"randomkey", randomkey),
                (c"desencode", desencode),
                (c"desdecode", desdecode),
                (c"hexencode", hexencode),
                (c"hexdecode", hexdecode),
                (c"hmac64", hmac64),
                (c"hmac64_md5", hmac64_md5),
                (c"dhexchange", dhexchange),
                (c"dhsecret", dhsecret),
                (c"base64encode", base64encode),
                (c"base64decode", base64decode),
                (c"sha1", sha1),
                (c"hmac_sha1", hmac_sha1),
                (c"hmac_hash", hmac_hash),
                (c"xor_str", xor_str),
            ],
        );
        ffi::lua_createtable(l, 0, crypt::PADDING_MODES.len() as c_int);
        for (name, mode) in crypt::PADDING_MODES {
            ffi::lua_pushinteger(l, mode);
            ffi::lua_pushlstring(l, name.as_ptr().cast(), name.len());
            ffi::lua_insert(l, -2);
            ffi::lua_rawset(l, -3);
        }
        ffi::lua_setfield(l, -2, c"padding".as_ptr());
    }
    1
}

/// Opens `md5.core` (skynet's `md5` module adds `sumhexa` and `hmacmd5` in Lua; here they
/// are native too).
pub(crate) unsafe extern "C-unwind" fn open_md5(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        new_library(
            l,
            &[
                (c"sum", md5_sum),
                (c"sumhexa", md5_sumhexa),
                (c"exor", md5_exor),
                (c"crypt", md5_crypt),
                (c"decrypt", md5_decrypt),
                (c"hmacmd5", md5_hmacmd5),
            ],
        );
        ffi::lua_pushstring(l, c"MD5 1.2".as_ptr());
        ffi::lua_setfield(l, -2, c"_VERSION".as_ptr());
    }
    1
}

/// Opens `skywasm.digest`: digests skynet's crypt lacks that the drivers need (`sha256`).
pub(crate) unsafe extern "C-unwind" fn open_digest(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { new_library(l, &[(c"sha256", sha256)]) };
    1
}

unsafe extern "C-unwind" fn sha256(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_bytes(l, &crypt::sha256(bytes_arg(l, 1))) }
}

/// The 8-byte argument at `index`, or skynet's error naming it `what`.
///
/// # Safety
/// `l` valid.
unsafe fn uint64_arg(l: *mut ffi::lua_State, index: c_int, what: &'static str) -> [u8; 8] {
    // SAFETY: forwarded; the error path owns nothing but its message.
    unsafe {
        match crypt::uint64_arg(bytes_arg(l, index), what) {
            Ok(value) => value,
            Err(why) => raise(l, why.to_string()),
        }
    }
}

/// The padding mode argument at `index` (default ISO 7816-4).
///
/// # Safety
/// `l` valid.
unsafe fn padding_arg(l: *mut ffi::lua_State, index: c_int) -> Padding {
    // SAFETY: forwarded.
    unsafe {
        let mode = ffi::luaL_optinteger(l, index, 0);
        match Padding::from_mode(mode) {
            Ok(padding) => padding,
            Err(why) => raise(l, why.to_string()),
        }
    }
}

unsafe extern "C-unwind" fn hashkey(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state; the argument stays on the stack.
    unsafe { push_bytes(l, &crypt::hashkey(bytes_arg(l, 1))) }
}

unsafe extern "C-unwind" fn randomkey(l: *mut ffi::lua_State) -> c_int {
    let mut bytes = [0u8; 8];
    crate::entry::random_bytes(&mut bytes);
    // SAFETY: Lua calls with a valid state.
    unsafe { push_bytes(l, &crypt::random_key(bytes)) }
}

unsafe extern "C-unwind" fn desencode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above; arguments are read before anything is owned.
    unsafe {
        let (key, text, padding) = (bytes_arg(l, 1), bytes_arg(l, 2), padding_arg(l, 3));
        push_result(l, crypt::des_encode(key, text, padding))
    }
}

unsafe extern "C-unwind" fn desdecode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let (key, text, padding) = (bytes_arg(l, 1), bytes_arg(l, 2), padding_arg(l, 3));
        push_result(l, crypt::des_decode(key, text, padding))
    }
}

unsafe extern "C-unwind" fn hexencode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_owned(l, crypt::hex_encode(bytes_arg(l, 1))) }
}

unsafe extern "C-unwind" fn hexdecode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_result(l, crypt::hex_decode(bytes_arg(l, 1))) }
}

unsafe extern "C-unwind" fn hmac64(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let (x, y) = (uint64_arg(l, 1, "uint64 x"), uint64_arg(l, 2, "uint64 y"));
        push_bytes(l, &crypt::hmac64(&x, &y))
    }
}

unsafe extern "C-unwind" fn hmac64_md5(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let (x, y) = (uint64_arg(l, 1, "uint64 x"), uint64_arg(l, 2, "uint64 y"));
        push_bytes(l, &crypt::hmac64_md5(&x, &y))
    }
}

unsafe extern "C-unwind" fn hmac_hash(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let key = uint64_arg(l, 1, "uint64 key");
        push_bytes(l, &crypt::hmac_hash(&key, bytes_arg(l, 2)))
    }
}

/// Pushes an 8-byte Diffie-Hellman result or raises its error.
///
/// # Safety
/// `l` valid.
unsafe fn push_dh(l: *mut ffi::lua_State, result: Result<[u8; 8], CryptError>) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        match result {
            Ok(value) => push_bytes(l, &value),
            Err(why) => raise(l, why.to_string()),
        }
    }
}

unsafe extern "C-unwind" fn dhexchange(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let x = uint64_arg(l, 1, "dh uint64 key");
        push_dh(l, crypt::dh_exchange(&x))
    }
}

unsafe extern "C-unwind" fn dhsecret(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let (x, y) = (uint64_arg(l, 1, "uint64 x"), uint64_arg(l, 2, "uint64 y"));
        push_dh(l, crypt::dh_secret(&x, &y))
    }
}

unsafe extern "C-unwind" fn base64encode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_owned(l, crypt::base64_encode(bytes_arg(l, 1))) }
}

unsafe extern "C-unwind" fn base64decode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_result(l, crypt::base64_decode(bytes_arg(l, 1))) }
}

unsafe extern "C-unwind" fn sha1(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_bytes(l, &crypt::sha1(bytes_arg(l, 1))) }
}

unsafe extern "C-unwind" fn hmac_sha1(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_bytes(l, &crypt::hmac_sha1(bytes_arg(l, 1), bytes_arg(l, 2))) }
}

unsafe extern "C-unwind" fn xor_str(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_result(l, crypt::xor_str(bytes_arg(l, 1), bytes_arg(l, 2))) }
}

unsafe extern "C-unwind" fn md5_sum(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_bytes(l, &md5::sum(bytes_arg(l, 1))) }
}

unsafe extern "C-unwind" fn md5_sumhexa(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_owned(l, crypt::hex_encode(&md5::sum(bytes_arg(l, 1)))) }
}

unsafe extern "C-unwind" fn md5_exor(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let (a, b) = (bytes_arg(l, 1), bytes_arg(l, 2));
        if a.len() != b.len() {
            ffi::luaL_argerror(l, 2, c"lengths must be equal".as_ptr());
        }
        push_result(l, md5::exor(a, b))
    }
}

unsafe extern "C-unwind" fn md5_crypt(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let (message, key) = (bytes_arg(l, 1), bytes_arg(l, 2));
        // lua-md5's default seed: the time, as the bytes of a C `time_t`
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        let default_seed = now.to_le_bytes();
        let seed = opt_bytes_arg(l, 3).unwrap_or(&default_seed);
        push_result(l, md5::crypt(message, key, seed))
    }
}

unsafe extern "C-unwind" fn md5_decrypt(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe {
        let (cyphertext, key) = (bytes_arg(l, 1), bytes_arg(l, 2));
        match md5::decrypt(cyphertext, key) {
            Ok(plain) => push_owned(l, plain),
            Err(md5::Md5Error::NotCyphered) => {
                ffi::luaL_argerror(l, 1, c"invalid cyphered string".as_ptr());
                unreachable!("luaL_argerror does not return")
            }
            Err(why) => raise(l, why.to_string()),
        }
    }
}

unsafe extern "C-unwind" fn md5_hmacmd5(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as above.
    unsafe { push_owned(l, md5::hmac_md5_hex(bytes_arg(l, 1), bytes_arg(l, 2))) }
}
