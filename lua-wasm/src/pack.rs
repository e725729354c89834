//! `skynet.pack` for Lua values: Lua's stack written with, and read back through, the shared
//! codec's one-value-at-a-time layer (`skywasm_pack::raw`), so Lua and Rust services
//! produce the same bytes from one implementation. Error texts are skynet's.

use std::ffi::c_int;

use mlua_sys as ffi;
use skywasm_pack::raw::{self, Item, Reader};
use skywasm_pack::MAX_DEPTH;

/// Why Lua values could not be packed; raised as a Lua error by the caller.
pub(crate) enum PackFail {
    /// More than `MAX_DEPTH` nested tables.
    TooDeep,
    /// A function, thread or full userdata (the Lua type's name).
    Unsupported(&'static std::ffi::CStr),
    /// A string of 4 GiB or more.
    TooLong,
}

/// Writes the values at stack indices `first..=last` (absolute) to `out`.
///
/// # Safety
/// `l` is a valid state; the indices exist. A `__pairs` metamethod may raise a Lua error,
/// which unwinds through this frame (the caller's buffer then leaks).
pub(crate) unsafe fn pack_values(
    l: *mut ffi::lua_State,
    first: c_int,
    last: c_int,
    out: &mut Vec<u8>,
) -> Result<(), PackFail> {
    for index in first..=last {
        // SAFETY: forwarded from the caller.
        unsafe { pack_one(l, index, 0, out)? };
    }
    Ok(())
}

/// Writes the value at absolute index `index`, found inside `depth` tables.
///
/// # Safety
/// As [`pack_values`].
unsafe fn pack_one(
    l: *mut ffi::lua_State,
    index: c_int,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), PackFail> {
    if depth > MAX_DEPTH {
        return Err(PackFail::TooDeep);
    }
    // SAFETY: `l` valid and `index` exists (caller).
    unsafe {
        match ffi::lua_type(l, index) {
            ffi::LUA_TNIL => raw::write_nil(out),
            ffi::LUA_TBOOLEAN => raw::write_boolean(out, ffi::lua_toboolean(l, index) != 0),
            ffi::LUA_TNUMBER => {
                if ffi::lua_isinteger(l, index) != 0 {
                    raw::write_integer(out, ffi::lua_tointeger(l, index));
                } else {
                    raw::write_real(out, ffi::lua_tonumber(l, index));
                }
            }
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let ptr = ffi::lua_tolstring(l, index, &mut len);
                let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
                raw::write_string(out, bytes).map_err(|_| PackFail::TooLong)?;
            }
            ffi::LUA_TLIGHTUSERDATA => {
                raw::write_light_userdata(out, ffi::lua_touserdata(l, index) as usize as u64)
            }
            ffi::LUA_TTABLE => pack_table(l, index, depth, out)?,
            ffi::LUA_TFUNCTION => return Err(PackFail::Unsupported(c"function")),
            ffi::LUA_TTHREAD => return Err(PackFail::Unsupported(c"thread")),
            _ => return Err(PackFail::Unsupported(c"userdata")),
        }
    }
    Ok(())
}

/// Writes the table at absolute index `index`: its array part `t[1..=#t]` (raw length),
/// then every other pair in `next` order; or, with a `__pairs` metamethod, every pair it
/// produces with an empty array part (as skynet).
///
/// # Safety
/// As [`pack_values`].
unsafe fn pack_table(
    l: *mut ffi::lua_State,
    index: c_int,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), PackFail> {
    // SAFETY: `l` valid and `index` is a table (caller).
    unsafe {
        ffi::luaL_checkstack(l, ffi::LUA_MINSTACK, std::ptr::null());
        if ffi::luaL_getmetafield(l, index, c"__pairs".as_ptr()) != ffi::LUA_TNIL {
            return pack_metapairs(l, index, depth, out);
        }
        let array_len = ffi::lua_rawlen(l, index);
        raw::write_table_start(out, array_len);
        for i in 1..=array_len {
            ffi::lua_rawgeti(l, index, i as ffi::lua_Integer);
            let top = ffi::lua_gettop(l);
            let written = pack_one(l, top, depth + 1, out);
            ffi::lua_settop(l, top - 1);
            written?;
        }
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, index) != 0 {
            let top = ffi::lua_gettop(l);
            if ffi::lua_isinteger(l, top - 1) != 0 {
                let key = ffi::lua_tointeger(l, top - 1);
                if key >= 1 && key as u64 <= array_len as u64 {
                    ffi::lua_settop(l, top - 1);
                    continue;
                }
            }
            let written = pack_one(l, top - 1, depth + 1, out)
                .and_then(|()| pack_one(l, top, depth + 1, out));
            ffi::lua_settop(l, top - 1);
            if let Err(fail) = written {
                ffi::lua_settop(l, top - 2);
                return Err(fail);
            }
        }
        raw::write_table_end(out);
    }
    Ok(())
}

/// Writes a table through its `__pairs` metamethod, which is on the stack top.
///
/// # Safety
/// As [`pack_values`].
unsafe fn pack_metapairs(
    l: *mut ffi::lua_State,
    index: c_int,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), PackFail> {
    raw::write_table_start(out, 0);
    // SAFETY: `l` valid, the metamethod on top, `index` the table (caller).
    unsafe {
        ffi::lua_pushvalue(l, index);
        ffi::lua_call(l, 1, 3); // next, state, control
        loop {
            let base = ffi::lua_gettop(l); // iterator at base-2, state base-1, control base
            ffi::lua_pushvalue(l, base - 2);
            ffi::lua_pushvalue(l, base - 1);
            ffi::lua_pushvalue(l, base);
            ffi::lua_call(l, 2, 2);
            let top = ffi::lua_gettop(l);
            if ffi::lua_type(l, top - 1) == ffi::LUA_TNIL {
                ffi::lua_settop(l, base - 3);
                break;
            }
            let written = pack_one(l, top - 1, depth + 1, out)
                .and_then(|()| pack_one(l, top, depth + 1, out));
            if let Err(fail) = written {
                ffi::lua_settop(l, base - 3);
                return Err(fail);
            }
            // The key becomes the new control value.
            ffi::lua_copy(l, top - 1, base);
            ffi::lua_settop(l, base);
        }
    }
    raw::write_table_end(out);
    Ok(())
}

/// Raises the Lua error for `fail`, with skynet's texts.
///
/// # Safety
/// `l` is valid; nothing owned may be alive in the calling frames that the error unwinds.
pub(crate) unsafe fn raise(l: *mut ffi::lua_State, fail: PackFail) -> ! {
    // SAFETY: a valid state; the format strings are NUL-terminated literals.
    unsafe {
        match fail {
            PackFail::TooDeep => {
                ffi::luaL_error(l, c"serialize can't pack too depth table".as_ptr())
            }
            PackFail::Unsupported(name) => {
                ffi::luaL_error(l, c"Unsupport type %s to serialize".as_ptr(), name.as_ptr())
            }
            PackFail::TooLong => {
                ffi::luaL_error(l, c"serialize can't pack a string of 4 GiB".as_ptr())
            }
        };
    }
    unreachable!("luaL_error does not return")
}

/// Pushes every value in `bytes`; the number pushed, or a Lua error ("Invalid serialize
/// stream") for malformed input.
///
/// # Safety
/// `l` is valid; `bytes` stays valid and unchanged during the call.
pub(crate) unsafe fn unpack_values(l: *mut ffi::lua_State, bytes: &[u8]) -> c_int {
    let mut reader = Reader::new(bytes);
    let mut pushed: c_int = 0;
    loop {
        let item = match reader.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => return pushed,
            // SAFETY: a valid state; the reader owns nothing.
            Err(_) => unsafe { invalid_stream(l, &reader) },
        };
        // SAFETY: a valid state.
        unsafe {
            ffi::luaL_checkstack(l, ffi::LUA_MINSTACK, c"too many values to unpack".as_ptr());
            push_item(l, &mut reader, item);
        }
        pushed += 1;
    }
}

/// Pushes the value starting with `item` (a whole table for a table header).
///
/// # Safety
/// As [`unpack_values`]. Recursion is bounded by the reader's depth limit.
unsafe fn push_item(l: *mut ffi::lua_State, reader: &mut Reader<'_>, item: Item<'_>) {
    // SAFETY: a valid state with stack room (the callers check).
    unsafe {
        match item {
            Item::Nil | Item::TableEnd => ffi::lua_pushnil(l),
            Item::Boolean(b) => ffi::lua_pushboolean(l, c_int::from(b)),
            Item::Integer(i) => ffi::lua_pushinteger(l, i),
            Item::Real(f) => ffi::lua_pushnumber(l, f),
            Item::LightUserdata(p) => ffi::lua_pushlightuserdata(l, p as usize as *mut _),
            Item::String(bytes) => {
                ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
            }
            Item::Table { array_len } => {
                ffi::luaL_checkstack(l, ffi::LUA_MINSTACK, c"table too deep".as_ptr());
                let presize = c_int::try_from(array_len).unwrap_or(c_int::MAX);
                ffi::lua_createtable(l, presize, 0);
                let table = ffi::lua_gettop(l);
                for i in 1..=array_len {
                    let item = next_inside(l, reader);
                    push_item(l, reader, item);
                    ffi::lua_rawseti(l, table, i as ffi::lua_Integer);
                }
                loop {
                    let key = next_inside(l, reader);
                    if key == Item::TableEnd {
                        break;
                    }
                    push_item(l, reader, key);
                    let value = next_inside(l, reader);
                    push_item(l, reader, value);
                    ffi::lua_rawset(l, table);
                }
            }
        }
    }
}

/// The next item inside an open table, where the input must go on.
///
/// # Safety
/// As [`unpack_values`].
unsafe fn next_inside<'a>(l: *mut ffi::lua_State, reader: &mut Reader<'a>) -> Item<'a> {
    match reader.next_item() {
        Ok(Some(item)) => item,
        // SAFETY: a valid state; the reader owns nothing.
        _ => unsafe { invalid_stream(l, reader) },
    }
}

/// Raises skynet's error for a malformed stream, with where it went wrong.
///
/// # Safety
/// `l` is valid.
unsafe fn invalid_stream(l: *mut ffi::lua_State, reader: &Reader<'_>) -> ! {
    let offset = c_int::try_from(reader.offset()).unwrap_or(c_int::MAX);
    // SAFETY: a valid state; NUL-terminated format.
    unsafe { ffi::luaL_error(l, c"Invalid serialize stream (at byte %d)".as_ptr(), offset) };
    unreachable!("luaL_error does not return")
}
