//! `skynet.profile`: per-coroutine time accounting, as skynet's snlua has it built in.
//! `profile.start([co])` starts a coroutine's clock and `profile.stop([co])` returns the
//! seconds it ran since, without the time it spent suspended: every resume in the service
//! (`coroutine.resume` and `coroutine.wrap` are replaced by this module's, as in skynet, and
//! skynet.core's native dispatch calls [`enter`] and [`leave`]) restarts a profiled
//! coroutine's clock and adds what it ran when it yields back.
//!
//! skynet reads the thread's CPU clock; a guest has none (the host's would count other
//! services), so the clock here is the monotonic one, read only while the coroutine runs.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use mlua_sys as ffi;

unsafe extern "C-unwind" {
    /// Lua 5.4.6's `lua_closethread` (mlua-sys declares it only for some Lua versions).
    fn lua_closethread(l: *mut ffi::lua_State, from: *mut ffi::lua_State) -> c_int;
}

/// Registry key of the table coroutine → when its clock last started (weak).
static START_KEY: u8 = 0;
/// Registry key of the table coroutine → seconds it ran before that (weak).
static TOTAL_KEY: u8 = 0;
/// Whether any coroutine of this service was ever profiled: until then a resume pays
/// nothing for this module.
static ACTIVE: AtomicBool = AtomicBool::new(false);

fn key(k: &'static u8) -> *const c_void {
    std::ptr::from_ref(k).cast()
}

/// Seconds on the monotonic clock.
fn now() -> f64 {
    skywasm_abi::sys::hpc() as f64 / 1e9
}

/// Opens `skynet.profile` and installs its `resume` and `wrap` as `coroutine.resume` and
/// `coroutine.wrap` (skynet's snlua does the same), leaving the module table on the stack.
///
/// # Safety
/// `l` is a valid state with the base libraries open.
pub(crate) unsafe extern "C-unwind" fn open(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: the caller's contract; every index used is on the stack.
    unsafe {
        ffi::lua_createtable(l, 0, 4);
        let functions: [(&std::ffi::CStr, ffi::lua_CFunction); 4] = [
            (c"start", start),
            (c"stop", stop),
            (c"resume", resume),
            (c"wrap", wrap),
        ];
        for (name, f) in functions {
            ffi::lua_pushcfunction(l, f);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
        ffi::lua_getglobal(l, c"coroutine".as_ptr());
        if ffi::lua_istable(l, -1) != 0 {
            ffi::lua_getfield(l, -2, c"resume".as_ptr());
            ffi::lua_setfield(l, -2, c"resume".as_ptr());
            ffi::lua_getfield(l, -2, c"wrap".as_ptr());
            ffi::lua_setfield(l, -2, c"wrap".as_ptr());
        }
        ffi::lua_pop(l, 1);
    }
    1
}

/// The number stored for the coroutine at `co` in the table under `k`, if any.
///
/// # Safety
/// `l` is valid; `co` is an absolute index.
unsafe fn get(l: *mut ffi::lua_State, k: &'static u8, co: c_int) -> Option<f64> {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, key(k));
        ffi::lua_pushvalue(l, co);
        ffi::lua_rawget(l, -2);
        let value = (ffi::lua_type(l, -1) == ffi::LUA_TNUMBER).then(|| ffi::lua_tonumber(l, -1));
        ffi::lua_pop(l, 2);
        value
    }
}

/// Makes the two weak tables on the first `start` (weak tables in the snapshot every
/// service starts from would cost each service's collector on every cycle).
///
/// # Safety
/// `l` is valid with three free stack slots.
unsafe fn make_tables(l: *mut ffi::lua_State) {
    // SAFETY: the caller's contract.
    unsafe {
        for k in [&START_KEY, &TOTAL_KEY] {
            ffi::lua_createtable(l, 0, 0);
            ffi::lua_createtable(l, 0, 1);
            ffi::lua_pushstring(l, c"kv".as_ptr());
            ffi::lua_setfield(l, -2, c"__mode".as_ptr());
            ffi::lua_setmetatable(l, -2);
            ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, key(k));
        }
    }
}

/// Sets (or with `None` clears) the number for the coroutine at `co` in the table under `k`.
///
/// # Safety
/// `l` is valid; `co` is an absolute index.
unsafe fn set(l: *mut ffi::lua_State, k: &'static u8, co: c_int, value: Option<f64>) {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, key(k));
        ffi::lua_pushvalue(l, co);
        match value {
            Some(v) => ffi::lua_pushnumber(l, v),
            None => ffi::lua_pushnil(l),
        }
        ffi::lua_rawset(l, -3);
        ffi::lua_pop(l, 1);
    }
}

/// Before resuming the coroutine at `co`: restarts its clock if it is profiled.
///
/// # Safety
/// `l` is valid with two free stack slots; `co` is an absolute index.
pub(crate) unsafe fn enter(l: *mut ffi::lua_State, co: c_int) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe {
        if get(l, &START_KEY, co).is_some() {
            set(l, &START_KEY, co, Some(now()));
        }
    }
}

/// After a resume of the coroutine at `co` returned: adds what it ran to its total.
///
/// # Safety
/// As [`enter`].
pub(crate) unsafe fn leave(l: *mut ffi::lua_State, co: c_int) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe {
        if let Some(started) = get(l, &START_KEY, co) {
            let total = get(l, &TOTAL_KEY, co).unwrap_or(0.0);
            set(l, &TOTAL_KEY, co, Some(total + (now() - started).max(0.0)));
        }
    }
}

/// Puts the coroutine the call names (argument 1) or the running one at index 1.
///
/// # Safety
/// Called from a Lua C function.
unsafe fn thread_argument(l: *mut ffi::lua_State) {
    // SAFETY: the caller's contract.
    unsafe {
        if ffi::lua_gettop(l) == 0 {
            ffi::lua_pushthread(l);
        } else {
            ffi::lua_settop(l, 1);
            ffi::luaL_checktype(l, 1, ffi::LUA_TTHREAD);
        }
    }
}

/// `profile.start([co])`: starts the clock of `co` (default: the running coroutine).
unsafe extern "C-unwind" fn start(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        thread_argument(l);
        if !ACTIVE.load(Ordering::Relaxed) {
            make_tables(l);
            ACTIVE.store(true, Ordering::Relaxed);
        }
        if get(l, &START_KEY, 1).is_some() {
            return ffi::luaL_error(
                l,
                c"Thread %p start profile more than once".as_ptr(),
                ffi::lua_topointer(l, 1),
            );
        }
        set(l, &TOTAL_KEY, 1, Some(0.0));
        set(l, &START_KEY, 1, Some(now()));
    }
    0
}

/// `profile.stop([co])`: the seconds `co` ran since its `start`, and its clock removed.
unsafe extern "C-unwind" fn stop(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        thread_argument(l);
        let started = if ACTIVE.load(Ordering::Relaxed) {
            get(l, &START_KEY, 1)
        } else {
            None
        };
        let Some(started) = started else {
            return ffi::luaL_error(l, c"Call profile.start() before profile.stop()".as_ptr());
        };
        let total = get(l, &TOTAL_KEY, 1).unwrap_or(0.0) + (now() - started).max(0.0);
        set(l, &START_KEY, 1, None);
        set(l, &TOTAL_KEY, 1, None);
        ffi::lua_pushnumber(l, total);
    }
    1
}

/// Resumes the coroutine at `co` with the top `args` values, timing it: the count of its
/// results moved onto `l`'s stack, or `None` with the error message on the stack.
///
/// # Safety
/// Called from a Lua C function; `co` is an absolute index holding a coroutine.
unsafe fn timed_resume(l: *mut ffi::lua_State, co: c_int, args: c_int) -> Option<c_int> {
    // SAFETY: the caller's contract.
    unsafe {
        let thread = ffi::lua_tothread(l, co);
        if ffi::lua_checkstack(thread, args) == 0 {
            ffi::lua_pop(l, args);
            ffi::lua_pushstring(l, c"too many arguments to resume".as_ptr());
            return None;
        }
        ffi::lua_xmove(l, thread, args);
        enter(l, co);
        let mut results = 0;
        let status = ffi::lua_resume(thread, l, args, &mut results);
        leave(l, co);
        if status != ffi::LUA_OK && status != ffi::LUA_YIELD {
            ffi::lua_xmove(thread, l, 1);
            return None;
        }
        if ffi::lua_checkstack(l, results + 1) == 0 {
            ffi::lua_pop(thread, results);
            ffi::lua_pushstring(l, c"too many results to resume".as_ptr());
            return None;
        }
        ffi::lua_xmove(thread, l, results);
        Some(results)
    }
}

/// `coroutine.resume(co, ...)`, timing profiled coroutines.
unsafe extern "C-unwind" fn resume(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTHREAD);
        let args = ffi::lua_gettop(l) - 1;
        match timed_resume(l, 1, args) {
            Some(results) => {
                ffi::lua_pushboolean(l, 1);
                ffi::lua_rotate(l, -(results + 1), 1);
                results + 1
            }
            None => {
                ffi::lua_pushboolean(l, 0);
                ffi::lua_rotate(l, -2, 1);
                2
            }
        }
    }
}

/// `coroutine.wrap(f)`, whose function resumes through [`timed_resume`].
unsafe extern "C-unwind" fn wrap(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TFUNCTION);
        let thread = ffi::lua_newthread(l);
        ffi::lua_pushvalue(l, 1);
        ffi::lua_xmove(l, thread, 1);
        ffi::lua_pushcclosure(l, wrapped, 1);
    }
    1
}

/// The function `wrap` returns: resumes its coroutine and returns what it yields, or raises
/// its error (with the position prefixed to a string, as Lua's `coroutine.wrap`).
unsafe extern "C-unwind" fn wrapped(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; upvalue 1 is the coroutine.
    unsafe {
        let args = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_rotate(l, 1, 1);
        if let Some(results) = timed_resume(l, 1, args) {
            return results;
        }
        let thread = ffi::lua_tothread(l, 1);
        let status = ffi::lua_status(thread);
        if status != ffi::LUA_OK && status != ffi::LUA_YIELD {
            // Close its to-be-closed variables; the error may change on the way.
            lua_closethread(thread, l);
            ffi::lua_xmove(thread, l, 1);
        }
        if ffi::lua_type(l, -1) == ffi::LUA_TSTRING {
            ffi::luaL_where(l, 1);
            ffi::lua_rotate(l, -2, 1);
            ffi::lua_concat(l, 2);
        }
        ffi::lua_error(l)
    }
}
