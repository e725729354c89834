//! The service's Lua state: created once per instance, with Lua's standard libraries, then
//! handed to the loader with the service's argument line.

use std::ffi::c_int;

use mlua_sys as ffi;

/// skynet's loader, adapted to find files through the host.
const LOADER: &str = include_str!("../lualib/loader.lua");

/// A Lua state owned by this instance (a wasm instance runs one service, on one thread).
pub(crate) struct Vm {
    l: *mut ffi::lua_State,
    memory: &'static mut Memory,
}

/// skynet's accounting of a Lua service's memory: what Lua holds, the limit (0: none) past
/// which allocations that grow fail (Lua then raises "not enough memory"), and the size at
/// which the next "Memory warning" is logged.
pub(crate) struct Memory {
    used: usize,
    limit: usize,
    report: usize,
}

/// The first "Memory warning" is logged past this many bytes, then at each doubling.
const MEMORY_REPORT: usize = 32 << 20;

extern "C" {
    fn realloc(ptr: *mut std::ffi::c_void, size: usize) -> *mut std::ffi::c_void;
    fn free(ptr: *mut std::ffi::c_void);
}

/// Lua's allocator for snlua (skynet's `lalloc`).
unsafe extern "C" fn allocate(
    ud: *mut std::ffi::c_void,
    ptr: *mut std::ffi::c_void,
    old_size: usize,
    new_size: usize,
) -> *mut std::ffi::c_void {
    // SAFETY: `ud` is the `Memory` this state was created with, used by this thread only.
    let memory = unsafe { &mut *ud.cast::<Memory>() };
    // With a null `ptr`, `old_size` is a type tag, not a size.
    let old = if ptr.is_null() { 0 } else { old_size };
    if new_size == 0 {
        // SAFETY: `ptr` came from this allocator (or is null).
        unsafe { free(ptr) };
        memory.used -= old;
        return std::ptr::null_mut();
    }
    let used = memory.used - old + new_size;
    if memory.limit != 0 && used > memory.limit && new_size > old {
        return std::ptr::null_mut();
    }
    // SAFETY: `ptr` came from this allocator (or is null).
    let block = unsafe { realloc(ptr, new_size) };
    if block.is_null() {
        return block;
    }
    memory.used = used;
    if used > memory.report {
        memory.report = memory.report.saturating_mul(2);
        let line = format!("Memory warning {:.2} M", used as f64 / (1024.0 * 1024.0));
        skywasm_abi::sys::log(line.as_bytes());
    }
    block
}

extern "C-unwind" {
    /// `csrc/reseed.c`: a new string-hash seed for the state, once.
    fn skywasm_lua_reseed(l: *mut ffi::lua_State, seed: u32);
    /// `csrc/reseed.c`: notes, on the state a snapshot is made of, what a reseed must redo.
    fn skywasm_lua_note_snapshot(l: *mut ffi::lua_State);
}

impl Vm {
    /// A fresh state with the standard libraries.
    ///
    /// # Panics
    /// When Lua cannot allocate its state (the instance is out of memory at birth).
    pub(crate) fn new() -> Vm {
        let memory: &'static mut Memory = Box::leak(Box::new(Memory {
            used: 0,
            limit: 0,
            report: MEMORY_REPORT,
        }));
        let ud: *mut Memory = memory;
        // SAFETY: `allocate` follows lua_Alloc's contract; `ud` lives forever.
        let l = unsafe { ffi::lua_newstate(allocate, ud.cast()) };
        assert!(!l.is_null(), "not enough memory for a Lua state");
        // SAFETY: a fresh, valid state; requiref leaves the module table on the stack.
        unsafe {
            // Generational collection, as skynet's snlua: most garbage of a service is young,
            // and (after the full collection that ends pre-initialization) the snapshot's
            // objects are old, so minor collections leave their pages shared.
            ffi::lua_gc(l, ffi::LUA_GCGEN, 0, 0);
            ffi::luaL_openlibs(l);
            ffi::luaL_requiref(l, c"skynet.core".as_ptr(), crate::core::open, 0);
            // Before skynet.lua takes `coroutine.resume`: the profiling one, as skynet's.
            ffi::luaL_requiref(l, c"skynet.profile".as_ptr(), crate::profile::open, 0);
            ffi::lua_settop(l, 0);
            // The socket driver is opened on first `require`, as skynet's C module.
            ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, c"_PRELOAD".as_ptr());
            ffi::lua_pushcfunction(l, crate::socket::open);
            ffi::lua_setfield(l, -2, c"skynet.socketdriver".as_ptr());
            // Native modules written in Rust, opened on first `require` as skynet's C ones.
            ffi::lua_pushcfunction(l, crate::crypt::open_crypt);
            ffi::lua_setfield(l, -2, c"skynet.crypt".as_ptr());
            ffi::lua_pushcfunction(l, crate::crypt::open_crypt);
            ffi::lua_setfield(l, -2, c"client.crypt".as_ptr());
            ffi::lua_pushcfunction(l, crate::crypt::open_md5);
            ffi::lua_setfield(l, -2, c"md5.core".as_ptr());
            ffi::lua_pushcfunction(l, crate::crypt::open_digest);
            ffi::lua_setfield(l, -2, c"skywasm.digest".as_ptr());
            ffi::lua_pushcfunction(l, crate::sproto::open);
            ffi::lua_setfield(l, -2, c"sproto.core".as_ptr());
            ffi::lua_pushcfunction(l, crate::bson::open_bson);
            ffi::lua_setfield(l, -2, c"bson".as_ptr());
            ffi::lua_pushcfunction(l, crate::bson::open_driver);
            ffi::lua_setfield(l, -2, c"skynet.mongo.driver".as_ptr());
            ffi::lua_settop(l, 0);
            ffi::lua_atpanic(l, panic);
            install_builtin_searcher(l);
        }
        Vm { l, memory }
    }

    /// Gives the state a new string-hash seed (`csrc/reseed.c`): the snapshot every
    /// service starts from was built with a fixed one.
    pub(crate) fn reseed(&mut self, seed: u32) {
        // SAFETY: `l` is valid and idle; the reseed allocates only through the state's own
        // allocator, and this runs before any of the service's code.
        unsafe { skywasm_lua_reseed(self.l, seed) }
    }

    /// Sets the memory limit in bytes (0: none).
    pub(crate) fn set_memory_limit(&mut self, limit: usize) {
        self.memory.limit = limit;
    }

    /// Applies a `skynet.memlimit` the service's script set (the registry's `memlimit`),
    /// as skynet's snlua does after loading a service.
    pub(crate) fn apply_script_memlimit(&mut self) {
        let l = self.l;
        // SAFETY: `l` is valid and idle.
        unsafe {
            ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, c"memlimit".as_ptr());
            if ffi::lua_isinteger(l, -1) != 0 {
                let limit = ffi::lua_tointeger(l, -1);
                self.memory.limit = usize::try_from(limit).unwrap_or(0);
                let line = format!(
                    "Set memory limit to {:.2} M",
                    limit as f64 / (1024.0 * 1024.0)
                );
                skywasm_abi::sys::log(line.as_bytes());
                ffi::lua_pushnil(l);
                ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, c"memlimit".as_ptr());
            }
            ffi::lua_settop(l, 0);
        }
    }

    /// Loads the skynet library (what nearly every service requires) and collects garbage, so
    /// that a snapshot of this state serves every new service.
    pub(crate) fn preload(&mut self) {
        let l = self.l;
        // SAFETY: `l` is valid; `require` errors are caught by lua_pcall.
        unsafe {
            // Opening `math` seeded its generator from the clock: a fixed seed keeps the
            // snapshot identical from run to run (each service reseeds when it starts).
            ffi::lua_getglobal(l, c"math".as_ptr());
            ffi::lua_getfield(l, -1, c"randomseed".as_ptr());
            ffi::lua_pushinteger(l, 0);
            ffi::lua_pcall(l, 1, 0, 0);
            for module in PRELOADED {
                ffi::lua_settop(l, 0);
                ffi::lua_getglobal(l, c"require".as_ptr());
                ffi::lua_pushstring(l, module.as_ptr());
                // A failure leaves the module to be loaded (and report) at service start.
                ffi::lua_pcall(l, 1, 0, 0);
            }
            ffi::lua_settop(l, 0);
            if push_loader(l) == ffi::LUA_OK {
                ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, LOADER_KEY.as_ptr());
            }
            ffi::lua_settop(l, 0);
            ffi::lua_gc(l, ffi::LUA_GCCOLLECT, 0);
            skywasm_lua_note_snapshot(l);
        }
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
            if push_loader(l) != ffi::LUA_OK {
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

/// Registry key of the loader chunk compiled at pre-initialization.
const LOADER_KEY: &std::ffi::CStr = c"skywasm.loader";

/// Pushes the loader chunk (compiled once at pre-initialization, else now); the status of
/// compiling it, with the error message pushed on failure.
///
/// # Safety
/// `l` is valid with room for one value.
unsafe fn push_loader(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: the caller guarantees a valid state.
    unsafe {
        if ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, LOADER_KEY.as_ptr()) == ffi::LUA_TFUNCTION {
            return ffi::LUA_OK;
        }
        ffi::lua_settop(l, -2);
        ffi::luaL_loadbufferx(
            l,
            LOADER.as_ptr().cast(),
            LOADER.len(),
            c"=loader".as_ptr(),
            c"t".as_ptr(),
        )
    }
}

/// Modules loaded into the pre-initialized state.
const PRELOADED: &[&std::ffi::CStr] = &[
    // io.open, io.lines, loadfile and dofile over the host's data files
    c"skywasm.files",
    c"skynet",
    c"skynet.manager",
    c"skynet.queue",
    c"skynet.datacenter",
];

/// Puts the built-in library searcher right after `package.preload`'s.
///
/// # Safety
/// `l` is valid with the package library open.
unsafe fn install_builtin_searcher(l: *mut ffi::lua_State) {
    // SAFETY: the caller guarantees a valid state; the table is `package.searchers`.
    unsafe {
        ffi::lua_getglobal(l, c"package".as_ptr());
        ffi::lua_getfield(l, -1, c"searchers".as_ptr());
        let searchers = ffi::lua_gettop(l);
        let n = ffi::lua_rawlen(l, searchers) as ffi::lua_Integer;
        // shift searchers 2..n up by one
        let mut i = n;
        while i >= 2 {
            ffi::lua_rawgeti(l, searchers, i);
            ffi::lua_rawseti(l, searchers, i + 1);
            i -= 1;
        }
        ffi::lua_pushcfunction(l, builtin_searcher);
        ffi::lua_rawseti(l, searchers, 2);
        ffi::lua_settop(l, 0);
    }
}

/// `package.searchers` entry for the library compiled into snlua: the loaded chunk and its
/// name, or a message saying it is not built in.
unsafe extern "C-unwind" fn builtin_searcher(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state and the module name at index 1.
    unsafe {
        let mut len = 0usize;
        let ptr = ffi::luaL_checklstring(l, 1, &mut len);
        let name = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
        let Some((builtin, source)) = crate::lualib::find(b"module", name) else {
            ffi::lua_pushfstring(l, c"no built-in module '%s'".as_ptr(), ptr);
            return 1;
        };
        let mut chunkname = format!("@{}.lua", builtin.replace('.', "/")).into_bytes();
        chunkname.push(0);
        let status = ffi::luaL_loadbufferx(
            l,
            source.as_ptr().cast(),
            source.len(),
            chunkname.as_ptr().cast(),
            c"t".as_ptr(),
        );
        drop(chunkname);
        if status != ffi::LUA_OK {
            ffi::lua_error(l);
        }
        ffi::lua_pushvalue(l, 1);
        2
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

/// An error outside any protected call: nothing can continue, so the instance traps (the
/// host ends this service and reports the message).
unsafe extern "C-unwind" fn panic(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state and the error on top.
    let text = unsafe {
        let ptr = ffi::lua_tolstring(l, -1, std::ptr::null_mut());
        if ptr.is_null() {
            "(error object is not a string)".to_string()
        } else {
            std::ffi::CStr::from_ptr(ptr).to_string_lossy().into_owned()
        }
    };
    skywasm_abi::sys::log(format!("unprotected Lua error: {text}").as_bytes());
    std::process::abort()
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
