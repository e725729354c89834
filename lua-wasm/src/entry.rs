//! The wasm exports of the skywasm ABI (`docs/abi.md` §3) for snlua.

use std::cell::RefCell;

use skywasm_abi::{ptype, sys};

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

/// Memory for an incoming body or the argument line; taken back by the call that gets it.
#[no_mangle]
pub extern "C" fn skywasm_alloc(len: u32) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(len as usize);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Takes back a buffer from `skywasm_alloc`.
///
/// # Safety
/// `ptr`/`len` came from `skywasm_alloc(len)` (or are 0, 0) and the host filled `len` bytes.
unsafe fn take(ptr: *mut u8, len: u32) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    // SAFETY: allocated by `skywasm_alloc` with capacity `len`; the host wrote `len` bytes.
    unsafe { Vec::from_raw_parts(ptr, len as usize, len as usize) }
}

/// Starts the service: a Lua state, then the loader with the argument line.
#[no_mangle]
pub extern "C" fn skywasm_init(ptr: *mut u8, len: u32) -> i32 {
    // SAFETY: the host passes what `skywasm_alloc(len)` returned, filled.
    let args = unsafe { take(ptr, len) };
    let args = String::from_utf8_lossy(&args).into_owned();
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

/// One message. Until the skynet library lands, a request gets an error reply so that no
/// caller waits forever; other messages are dropped.
#[no_mangle]
pub extern "C" fn skywasm_dispatch(ty: u32, session: i32, source: u32, ptr: *mut u8, len: u32) {
    // SAFETY: as in `skywasm_init`.
    drop(unsafe { take(ptr, len) });
    if session != 0 && ty != ptype::RESPONSE && ty != ptype::ERROR {
        sys::send(source, ptype::ERROR, session, &[]);
    }
}
