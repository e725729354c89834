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
    let mut vm = Vm::new();
    match vm.load_service(&args) {
        Ok(()) => {
            VM.with(|slot| *slot.borrow_mut() = Some(vm));
            0
        }
        Err(message) => {
            sys::log(format!("lua loader error : {message}").as_bytes());
            1
        }
    }
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
    unsafe { crate::core::dispatch(l, ty, session, source, ptr, len) };
}
