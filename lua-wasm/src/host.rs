//! The host's services as Lua functions for the loader: source files along the search paths
//! and config values. Each is a `lua_CFunction`. A Lua error unwinds the Rust frame without
//! running destructors, so errors are raised once nothing owned is alive; only Lua running
//! out of memory while the results are pushed can leak that call's buffer.

use std::ffi::c_int;

use mlua_sys as ffi;
use skywasm_abi::{error, source, sys};

/// Answers of `load_source` up to this size need one host call; larger ones need two (the
/// second with a buffer of exactly the answer's size).
const FIRST_BUFFER: usize = 4 << 10;

/// Pushes the loader's host table: `{load_source = ..., builtin = ..., getenv = ...}`.
///
/// # Safety
/// `l` is a valid Lua state with room for two more stack slots.
pub(crate) unsafe fn push_loader_table(l: *mut ffi::lua_State) {
    // SAFETY: the caller guarantees a valid state; the names are NUL-terminated literals.
    unsafe {
        ffi::lua_createtable(l, 0, 3);
        ffi::lua_pushcfunction(l, load_source);
        ffi::lua_setfield(l, -2, c"load_source".as_ptr());
        ffi::lua_pushcfunction(l, builtin);
        ffi::lua_setfield(l, -2, c"builtin".as_ptr());
        ffi::lua_pushcfunction(l, getenv);
        ffi::lua_setfield(l, -2, c"getenv".as_ptr());
    }
}

/// The string argument at `index` as bytes, or a Lua error naming the argument.
///
/// # Safety
/// `l` is a valid Lua state; the bytes live as long as the value stays on the stack.
pub(crate) unsafe fn check_bytes<'a>(l: *mut ffi::lua_State, index: c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: luaL_checklstring raises on a non-string and otherwise returns `len` valid bytes.
    unsafe {
        let ptr = ffi::luaL_checklstring(l, index, &mut len);
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

/// `load_source(kind, name)` → `pattern, path, source`, or nil when no file was found.
/// `kind` is "service", "module", "preload", "file" or "snax".
pub(crate) unsafe extern "C-unwind" fn load_source(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    let (kind, name) = unsafe { (check_bytes(l, 1), check_bytes(l, 2)) };
    let kind = match kind {
        b"service" => source::SERVICE,
        b"module" => source::MODULE,
        b"preload" => source::PRELOAD,
        b"file" => source::FILE,
        b"snax" => source::SNAX,
        // SAFETY: a valid state; nothing owned is alive in this frame.
        _ => unsafe {
            return ffi::luaL_argerror(l, 1, c"service, module, preload, file or snax".as_ptr());
        },
    };
    let Ok(name) = std::str::from_utf8(name) else {
        // SAFETY: as above.
        unsafe { return ffi::luaL_argerror(l, 2, c"not UTF-8".as_ptr()) };
    };
    let result = crate::core::host_answer(FIRST_BUFFER, |out| sys::load_source(kind, name, out));
    let pushed = match &result {
        Ok(answer) => {
            let mut parts = answer.splitn(3, |&b| b == 0);
            let pattern = parts.next().unwrap_or_default();
            let path = parts.next().unwrap_or_default();
            let bytes = parts.next().unwrap_or_default();
            // SAFETY: a valid state; the slices are valid for their lengths.
            unsafe {
                for part in [pattern, path, bytes] {
                    ffi::lua_pushlstring(l, part.as_ptr().cast(), part.len());
                }
            }
            3
        }
        Err(error::NOT_FOUND) => {
            // SAFETY: a valid state.
            unsafe { ffi::lua_pushnil(l) };
            1
        }
        Err(code) => {
            // SAFETY: a valid state; the message is NUL-terminated by construction.
            unsafe {
                ffi::lua_pushfstring(
                    l,
                    c"cannot load '%s' (error %d)".as_ptr(),
                    name_cstr(l, 2),
                    *code,
                )
            };
            -1
        }
    };
    drop(result);
    if pushed < 0 {
        // SAFETY: the message is on the stack and nothing owned is alive in this frame.
        unsafe { ffi::lua_error(l) }
    } else {
        pushed
    }
}

/// `read_data(path)` → the bytes of a data file under the service's `lua_data_path`, or
/// nil and the host's error code (`NOT_FOUND`, `DENIED`, `INVALID_ARGUMENT` for what is not
/// a regular file, `TOO_LARGE`; `TOO_LARGE` also when this instance cannot hold the copy).
pub(crate) unsafe extern "C-unwind" fn read_data(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    let path = unsafe { check_bytes(l, 1) };
    let Ok(path) = std::str::from_utf8(path) else {
        // SAFETY: a valid state; nothing owned is alive in this frame.
        unsafe { return ffi::luaL_argerror(l, 1, c"not UTF-8".as_ptr()) };
    };
    let result = crate::core::host_answer(FIRST_BUFFER, |out| {
        sys::load_source(source::DATA, path, out)
    });
    match &result {
        Ok(answer) => {
            let bytes = answer.splitn(3, |&b| b == 0).nth(2).unwrap_or_default();
            // SAFETY: a valid state; the slice is valid for its length. Lua running out of
            // memory here leaks `answer` (see the module's note).
            unsafe { ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len()) };
            1
        }
        Err(code) => {
            // SAFETY: a valid state.
            unsafe {
                ffi::lua_pushnil(l);
                ffi::lua_pushinteger(l, ffi::lua_Integer::from(*code));
            }
            2
        }
    }
}

/// The NUL-terminated string at `index` (already checked to be a string).
///
/// # Safety
/// `l` is valid and the value at `index` is a string.
unsafe fn name_cstr(l: *mut ffi::lua_State, index: c_int) -> *const std::ffi::c_char {
    // SAFETY: Lua strings are NUL-terminated internally.
    unsafe { ffi::lua_tolstring(l, index, std::ptr::null_mut()) }
}

/// `builtin(kind, name)` → the source of a module or service compiled into snlua, or nil.
unsafe extern "C-unwind" fn builtin(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; the sources are static.
    unsafe {
        let (kind, name) = (check_bytes(l, 1), check_bytes(l, 2));
        match crate::lualib::find(kind, name) {
            Some((_, source)) => {
                ffi::lua_pushlstring(l, source.as_ptr().cast(), source.len());
            }
            None => ffi::lua_pushnil(l),
        }
    }
    1
}

/// `getenv(key)` → the config value as a string, or nil.
unsafe extern "C-unwind" fn getenv(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    let key = unsafe { check_bytes(l, 1) };
    let Ok(key) = std::str::from_utf8(key) else {
        // SAFETY: a valid state; nothing owned is alive in this frame.
        unsafe { return ffi::luaL_argerror(l, 1, c"not UTF-8".as_ptr()) };
    };
    match crate::core::run_command("GETENV", key) {
        // SAFETY: a valid state; the bytes are valid for their length.
        Ok(value) => unsafe {
            ffi::lua_pushlstring(l, value.as_ptr().cast(), value.len());
        },
        // SAFETY: a valid state.
        Err(_) => unsafe { ffi::lua_pushnil(l) },
    }
    1
}
