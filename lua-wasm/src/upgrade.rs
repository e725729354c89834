//! Hot upgrade in snlua (docs/upgrade.md): the Lua side of `skywasm_snapshot` and
//! `skywasm_restore`, and the `skynet.core` functions `skynet.lua` builds `skynet.on_upgrade`
//! and `skynet.upgraded` on.
//!
//! Snapshot: `skynet.lua` registers (with `upgrade_hook`) a function that calls the
//! service's hook and returns its state packed with `skynet.pack`, and a version; it is
//! called protected, so an error in the hook refuses the upgrade instead of ending the
//! service. Restore: the host hands the state over before `skywasm_init`; the new script
//! reads it with `skynet.upgraded()` while it starts.

use std::cell::{Cell, RefCell};
use std::ffi::c_int;

use mlua_sys as ffi;
use skywasm_abi::sys;

thread_local! {
    /// Registry reference of the snapshot function `skynet.lua` registered (or none).
    static HOOK: Cell<c_int> = const { Cell::new(ffi::LUA_NOREF) };
    /// Set when an upgrade started this code (the host called `skywasm_restore`).
    static UPGRADING: Cell<bool> = const { Cell::new(false) };
    /// The old code's packed state and its version, until `upgraded` reads it.
    static RESTORED: RefCell<Option<(u32, Vec<u8>)>> = const { RefCell::new(None) };
}

/// `skywasm_snapshot`: 0 after handing over the state (or nothing, without a hook); 1 when
/// the hook failed, which refuses the upgrade.
pub(crate) fn snapshot(l: *mut ffi::lua_State) -> i32 {
    let hook = HOOK.get();
    if hook == ffi::LUA_NOREF {
        return 0;
    }
    // SAFETY: `l` is the service's main Lua state, idle between messages; the stack is left
    // as found.
    unsafe {
        let top = ffi::lua_gettop(l);
        ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(hook));
        if ffi::lua_pcall(l, 0, 2, 0) != ffi::LUA_OK {
            let why = text_of(l, -1);
            ffi::lua_settop(l, top);
            sys::log(format!("upgrade refused: the upgrade hook failed: {why}").as_bytes());
            return 1;
        }
        let mut result = 0;
        if ffi::lua_type(l, -2) == ffi::LUA_TSTRING {
            let mut len = 0usize;
            let ptr = ffi::lua_tolstring(l, -2, &mut len);
            let state = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
            let version =
                u32::try_from(ffi::lua_tointegerx(l, -1, std::ptr::null_mut())).unwrap_or(1);
            if sys::upgrade_state(version, state) != 0 {
                result = 1;
            }
        }
        ffi::lua_settop(l, top);
        result
    }
}

/// The value at `index` as text, without calling metamethods (which could raise).
///
/// # Safety
/// `l` valid, `index` a valid stack index.
unsafe fn text_of(l: *mut ffi::lua_State, index: c_int) -> String {
    let mut len = 0usize;
    // SAFETY: the caller's contract; lua_tolstring converts numbers in place, harmlessly.
    unsafe {
        let ptr = ffi::lua_tolstring(l, index, &mut len);
        if ptr.is_null() {
            return "(an error object that is not a string)".into();
        }
        String::from_utf8_lossy(std::slice::from_raw_parts(ptr.cast::<u8>(), len)).into_owned()
    }
}

/// `skywasm_restore`: keeps the state (`ptr`, `len` from `skywasm_alloc`) for the new script.
/// Version 0 with no bytes means the old code handed over nothing.
pub(crate) fn restore(version: u32, ptr: *mut u8, len: u32) -> i32 {
    UPGRADING.set(true);
    if len == 0 {
        return 0;
    }
    // SAFETY: the host filled `len` bytes of the buffer `skywasm_alloc(len)` returned, which
    // is ours to free.
    let bytes = unsafe {
        let bytes = std::slice::from_raw_parts(ptr, len as usize).to_vec();
        crate::core::free_message(ptr);
        bytes
    };
    RESTORED.with(|r| *r.borrow_mut() = Some((version, bytes)));
    0
}

/// `upgrade_hook(f)`: registers the snapshot function (nil: none).
pub(crate) unsafe extern "C-unwind" fn upgrade_hook(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let old = HOOK.replace(ffi::LUA_NOREF);
        if old != ffi::LUA_NOREF {
            ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, old);
        }
        if ffi::lua_type(l, 1) == ffi::LUA_TFUNCTION {
            ffi::lua_settop(l, 1);
            HOOK.set(ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX));
        }
    }
    0
}

/// `upgraded()`: the state the old code handed over and its version (taken once), or
/// nothing.
pub(crate) unsafe extern "C-unwind" fn upgraded(l: *mut ffi::lua_State) -> c_int {
    let Some((version, bytes)) = RESTORED.with(|r| r.borrow_mut().take()) else {
        return 0;
    };
    // SAFETY: called by Lua with a valid state; a malformed state raises a Lua error.
    unsafe {
        let base = ffi::lua_gettop(l);
        crate::pack::unpack_values(l, &bytes);
        // the state is the first value packed (nil if none)
        ffi::lua_settop(l, base + 1);
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(version));
    }
    2
}

/// `upgrading()`: true when an upgrade started this code.
pub(crate) unsafe extern "C-unwind" fn upgrading(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { ffi::lua_pushboolean(l, c_int::from(UPGRADING.get())) };
    1
}
