//! What the bindings of snlua's native modules (`skynet.crypt`, `md5.core`, ...) share:
//! reading byte-string arguments, and handing Rust-made results and errors to Lua without
//! leaking them when Lua raises (a Lua error unwinds past Rust frames without running their
//! destructors, so nothing owned may be alive when one is raised).

use std::ffi::{c_int, c_void, CStr};

use mlua_sys as ffi;

/// A module's functions, by name.
pub(crate) type Functions = &'static [(&'static CStr, ffi::lua_CFunction)];

/// Pushes a new table holding `functions`.
///
/// # Safety
/// `l` valid, with room for two more values (a C function has at least 20).
pub(crate) unsafe fn new_library(l: *mut ffi::lua_State, functions: Functions) {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_createtable(l, 0, functions.len() as c_int);
        for (name, function) in functions {
            ffi::lua_pushcfunction(l, *function);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
    }
}

/// The bytes of the string argument at `index` (numbers are converted, as
/// `luaL_checklstring` does), or a Lua argument error.
///
/// # Safety
/// `l` valid; the slice lives while the value stays on the stack (do not pop it).
pub(crate) unsafe fn bytes_arg<'a>(l: *mut ffi::lua_State, index: c_int) -> &'a [u8] {
    // SAFETY: luaL_checklstring returns `len` valid bytes or raises.
    unsafe {
        let mut len = 0usize;
        let ptr = ffi::luaL_checklstring(l, index, &mut len);
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

/// Like [`bytes_arg`], `None` when the argument is absent or nil.
///
/// # Safety
/// As [`bytes_arg`].
pub(crate) unsafe fn opt_bytes_arg<'a>(l: *mut ffi::lua_State, index: c_int) -> Option<&'a [u8]> {
    // SAFETY: forwarded.
    unsafe { (ffi::lua_isnoneornil(l, index) == 0).then(|| bytes_arg(l, index)) }
}

/// Pushes `bytes` as a string; returns 1 (the count of results).
///
/// # Safety
/// `l` valid; nothing owned alive in the calling frames (Lua may raise out of memory).
pub(crate) unsafe fn push_bytes(l: *mut ffi::lua_State, bytes: &[u8]) -> c_int {
    // SAFETY: the caller's contract; the pointer and length describe `bytes`.
    unsafe { ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len()) };
    1
}

/// Pushes a Rust-made byte string and frees it, also when Lua is out of memory (then the
/// memory error is raised after the bytes are freed); returns 1.
///
/// # Safety
/// `l` valid; nothing else owned alive in the calling frames.
pub(crate) unsafe fn push_owned(l: *mut ffi::lua_State, bytes: Vec<u8>) -> c_int {
    unsafe extern "C-unwind" fn push(l: *mut ffi::lua_State) -> c_int {
        // SAFETY: the light userdata is the `Vec` below, alive during this protected call.
        unsafe {
            let bytes = &*ffi::lua_touserdata(l, 1).cast::<Vec<u8>>();
            ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
        }
        1
    }
    // SAFETY: a C function has room for these two values; the call is protected, so any
    // error it raises returns here, where the bytes are freed before it is raised again.
    unsafe {
        ffi::lua_pushcfunction(l, push);
        ffi::lua_pushlightuserdata(l, std::ptr::from_ref(&bytes).cast_mut().cast::<c_void>());
        let status = ffi::lua_pcall(l, 1, 1, 0);
        drop(bytes);
        if status != ffi::LUA_OK {
            ffi::lua_error(l);
        }
    }
    1
}

/// Raises `message` as `luaL_error` would (with the caller's position in front), after
/// freeing it.
///
/// # Safety
/// `l` valid; nothing else owned alive in the calling frames.
pub(crate) unsafe fn raise(l: *mut ffi::lua_State, message: String) -> ! {
    // SAFETY: the caller's contract. If pushing the text fails for want of memory, that
    // error is raised instead and the short text leaks, nothing worse.
    unsafe {
        ffi::luaL_where(l, 1);
        ffi::lua_pushlstring(l, message.as_ptr().cast(), message.len());
        drop(message);
        ffi::lua_concat(l, 2);
        ffi::lua_error(l)
    }
}

/// Pushes the bytes of `result`, or raises its error's text.
///
/// # Safety
/// As [`push_owned`].
pub(crate) unsafe fn push_result<E: std::fmt::Display>(
    l: *mut ffi::lua_State,
    result: Result<Vec<u8>, E>,
) -> c_int {
    // SAFETY: forwarded; `result` is consumed before either call.
    unsafe {
        match result {
            Ok(bytes) => push_owned(l, bytes),
            Err(why) => raise(l, why.to_string()),
        }
    }
}
