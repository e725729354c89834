//! The wasm exports of the skywasm ABI (`docs/abi.md` §3) for snlua.

use std::cell::RefCell;

use skywasm_abi::sys;

use crate::state::Vm;

thread_local! {
    /// The one Lua VM of this instance, created by `skywasm_init`.
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

extern "C" {
    /// The C and Rust static constructors, gathered by the linker.
    fn __wasm_call_ctors();
}

/// The WASI reactor constructor, which the host calls once before anything else. Exporting it
/// also keeps the linker from wrapping every other export in constructor calls.
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the host calls `_initialize` exactly once, before any other export.
    unsafe { __wasm_call_ctors() }
}

/// Pre-initialization (run once by the node, then snapshotted): the Lua state with the
/// standard libraries, `skynet.core` and the skynet library loaded, so that every service
/// starts from that image instead of building it.
#[no_mangle]
pub extern "C" fn skywasm_preinit() {
    let mut vm = Vm::new();
    vm.preload();
    VM.with(|slot| *slot.borrow_mut() = Some(vm));
    crate::heap::seal();
}

extern "C-unwind" {
    /// The thread running Lua code now (our Lua patch, `lapi.c`).
    fn lua_runningthread(l: *mut mlua_sys::lua_State) -> *mut mlua_sys::lua_State;
}

/// `SIGNAL 0` arrived while this service runs a message (skynet's snlua signal 0): the
/// running Lua code raises "signal 0" at its next instruction, which `pcall` can catch; the
/// service lives on. Called by the host at a safe point inside the running message.
#[no_mangle]
pub extern "C" fn skywasm_interrupt() {
    let l = VM.with(|slot| {
        slot.try_borrow()
            .ok()
            .and_then(|vm| vm.as_ref().map(Vm::raw))
    });
    if let Some(l) = l {
        // SAFETY: lua_sethook is meant for asynchronous use (it only stores the hook and
        // marks the running frames), and the running thread pointer is read as it is now.
        unsafe {
            mlua_sys::lua_sethook(
                lua_runningthread(l),
                Some(signal_hook),
                mlua_sys::LUA_MASKCOUNT,
                1,
            );
        }
    }
}

/// Raises "signal 0" (or, when the host says the message ran past its tenant's soft CPU
/// limit, a "cpu limit" error) in the Lua code that was running, once.
unsafe extern "C-unwind" fn signal_hook(l: *mut mlua_sys::lua_State, _: *mut mlua_sys::lua_Debug) {
    let cpu = crate::core::run_command("STAT", "interrupt").is_ok_and(|why| why == b"cpu");
    let message = if cpu {
        c"cpu limit: this message ran past its soft CPU limit (an endless loop?)"
    } else {
        c"signal 0"
    };
    // SAFETY: called by Lua with a valid state, from a count hook (errors are allowed).
    unsafe {
        mlua_sys::lua_sethook(l, None, 0, 0);
        mlua_sys::luaL_error(l, message.as_ptr());
    }
}

/// Memory for an incoming body or the argument line (`malloc`ed: Lua may keep a body).
#[no_mangle]
pub extern "C" fn skywasm_alloc(len: u32) -> *mut u8 {
    crate::core::alloc_message(len)
}

/// Starts the service: a Lua state, then the loader with the argument line.
#[no_mangle]
pub extern "C" fn skywasm_init(ptr: *mut u8, len: u32) -> i32 {
    let args = if len == 0 {
        String::new()
    } else {
        // SAFETY: the host filled `len` bytes of the buffer `skywasm_alloc(len)` returned.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len as usize) };
        let args = String::from_utf8_lossy(bytes).into_owned();
        // SAFETY: the buffer is ours and not used again.
        unsafe { crate::core::free_message(ptr) };
        args
    };
    // The pre-initialized state when the node made a snapshot; a fresh one otherwise.
    let mut vm = VM
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_else(Vm::new);
    // Every service starts from the same image, with the same string-hash seed: it takes
    // one of its own (unless the node or its tenant says `lua_hash_seed = "fixed"`), so
    // that keys colliding in its tables cannot be made in advance.
    if !crate::core::run_command("GETENV", "lua_hash_seed").is_ok_and(|v| v == b"fixed") {
        vm.reseed(random_u32());
    }
    if let Some(limit) = config_memlimit() {
        vm.set_memory_limit(limit);
    }
    match vm.load_service(&args) {
        Ok(()) => {
            vm.apply_script_memlimit();
            VM.with(|slot| *slot.borrow_mut() = Some(vm));
            0
        }
        Err(message) => {
            sys::log(format!("lua loader error : {message}").as_bytes());
            1
        }
    }
}

/// Four random bytes from WASI's `random_get` (the host's generator).
fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    random_bytes(&mut bytes);
    u32::from_le_bytes(bytes)
}

/// Fills `buf` from WASI's `random_get` (the host's generator).
pub(crate) fn random_bytes(buf: &mut [u8]) {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn random_get(buf: *mut u8, len: usize) -> u16;
    }
    // SAFETY: the buffer is writable for its length; on failure it keeps its bytes (zeros
    // for the callers here), which the host never causes.
    unsafe {
        random_get(buf.as_mut_ptr(), buf.len());
    }
}

/// The config's `lua_memlimit`: bytes, with an optional K, M or G suffix (0: no limit). A
/// value that is not a size is logged and ignored.
fn config_memlimit() -> Option<usize> {
    let value = crate::core::run_command("GETENV", "lua_memlimit").ok()?;
    let text = String::from_utf8_lossy(&value);
    let limit = parse_size(text.trim());
    if limit.is_none() {
        sys::log(format!("lua_memlimit = {text:?} is not a size (like 64M); no limit").as_bytes());
    }
    limit
}

/// `123`, `64K`, `64M`, `1G`.
fn parse_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 1usize << 10),
        (i, 'M' | 'm') => (&text[..i], 1 << 20),
        (i, 'G' | 'g') => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(unit)
}

/// An upgrade asks for the state to hand to the new code: the service's upgrade hook
/// (`skynet.on_upgrade`) is called and its state packed; 0, or 1 when the hook failed (the
/// upgrade is refused).
#[no_mangle]
pub extern "C" fn skywasm_snapshot() -> i32 {
    let l = VM.with(|slot| slot.borrow().as_ref().map(Vm::raw));
    match l {
        Some(l) => crate::upgrade::snapshot(l),
        None => 0,
    }
}

/// An upgrade started this code: the old code's state (version 0 and no bytes: none), which
/// the script reads with `skynet.upgraded()`.
#[no_mangle]
pub extern "C" fn skywasm_restore(version: u32, ptr: *mut u8, len: u32) -> i32 {
    crate::upgrade::restore(version, ptr, len)
}

/// One message, to the Lua callback the service installed (`skynet.start` does).
#[no_mangle]
pub extern "C" fn skywasm_dispatch(ty: u32, session: i32, source: u32, ptr: *mut u8, len: u32) {
    let l = VM.with(|slot| slot.borrow().as_ref().map(Vm::raw));
    let Some(l) = l else {
        // SAFETY: the buffer is ours and unused.
        unsafe { crate::core::free_message(ptr) };
        return;
    };
    // SAFETY: the state is this instance's and idle; the buffer came from `skywasm_alloc`.
    unsafe { crate::dispatch::dispatch(l, ty, session, source, ptr, len) };
}
