//! The service's Lua state: created once per instance, with Lua's standard libraries, then
//! handed to the loader with the service's argument line.

use std::ffi::c_int;

use mlua_sys as ffi;

/// skynet's loader, adapted to find files through the host.
const LOADER: &str = include_str!("../lualib/loader.lua");

/// A Lua state owned by this instance (a wasm instance runs one service, on one thread).
pub(crate) struct Vm {
    l: *mut ffi::lua_State,
}

impl Vm {
    /// A fresh state with the standard libraries.
    ///
    /// # Panics
    /// When Lua cannot allocate its state (the instance is out of memory at birth).
    pub(crate) fn new() -> Vm {
        // SAFETY: luaL_newstate has no preconditions; it returns null only without memory.
        let l = unsafe { ffi::luaL_newstate() };
        assert!(!l.is_null(), "not enough memory for a Lua state");
        // SAFETY: a fresh, valid state; requiref leaves the module table on the stack.
        unsafe {
            ffi::luaL_openlibs(l);
            ffi::luaL_requiref(l, c"skynet.core".as_ptr(), crate::core::open, 0);
            ffi::lua_settop(l, 0);
        }
        Vm { l }
    }

    /// The raw state, for delivering messages.
    pub(crate) fn raw(&self) -> *mut ffi::lua_State {
        self.l
    }

    /// Runs the loader for `args` (`<script> [args...]`): the script's top level, which
    /// normally calls `skynet.start`. On failure, the error with a traceback.
    pub(crate) fn load_service(&mut self, args: &str) -> Result<(), String> {
        let l = self.l;
        // SAFETY: `l` is valid; the stack discipline is checked by the counts below.
        unsafe {
            ffi::lua_settop(l, 0);
            ffi::lua_pushcfunction(l, traceback);
            let loaded = ffi::luaL_loadbufferx(
                l,
                LOADER.as_ptr().cast(),
                LOADER.len(),
                c"=loader".as_ptr(),
                c"t".as_ptr(),
            );
            if loaded != ffi::LUA_OK {
                return Err(self.pop_message());
            }
            crate::host::push_loader_table(l);
            ffi::lua_pushlstring(l, args.as_ptr().cast(), args.len());
            let status = ffi::lua_pcall(l, 2, 0, 1);
            if status != ffi::LUA_OK {
                return Err(self.pop_message());
            }
            ffi::lua_settop(l, 0);
        }
        Ok(())
    }

    /// Pops the error value at the top as text (non-strings are described).
    fn pop_message(&mut self) -> String {
        let l = self.l;
        // SAFETY: `l` is valid and the stack holds at least the error value.
        unsafe {
            let mut len = 0usize;
            let ptr = ffi::lua_tolstring(l, -1, &mut len);
            let text = if ptr.is_null() {
                format!("(error object is a {} value)", type_name(l, -1))
            } else {
                String::from_utf8_lossy(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
                    .into_owned()
            };
            ffi::lua_settop(l, 0);
            text
        }
    }
}

/// The name of the Lua type at `index`.
///
/// # Safety
/// `l` is a valid state.
unsafe fn type_name(l: *mut ffi::lua_State, index: c_int) -> String {
    // SAFETY: lua_typename returns a static NUL-terminated name for any type code.
    unsafe {
        let name = ffi::lua_typename(l, ffi::lua_type(l, index));
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// Message handler for protected calls: the message with a traceback (as skynet's
/// `traceback` in snlua).
pub(crate) unsafe extern "C-unwind" fn traceback(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state and the error value at index 1.
    unsafe {
        let msg = ffi::lua_tolstring(l, 1, std::ptr::null_mut());
        if msg.is_null() {
            ffi::lua_pushfstring(
                l,
                c"(error object is a %s value)".as_ptr(),
                ffi::luaL_typename(l, 1),
            );
            let described = ffi::lua_tolstring(l, -1, std::ptr::null_mut());
            ffi::luaL_traceback(l, l, described, 1);
        } else {
            ffi::luaL_traceback(l, l, msg, 1);
        }
    }
    1
}
