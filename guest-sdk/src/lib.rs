//! Write skywasm services in Rust.
//!
//! A service is a `cdylib` crate built for `wasm32-wasip1`. It names a start function with
//! [`service!`]; the start function registers handlers with [`dispatch`] and may [`fork`]
//! background tasks. Each incoming message runs in its own task, so handlers can `await`
//! [`call`]s to other services; the host never blocks a worker while a call is in flight.
//!
//! ```no_run
//! use skywasm_guest::{self as sky, ptype, Request, Value};
//!
//! sky::service!(start);
//!
//! fn start(_args: &str) -> sky::Result<()> {
//!     sky::register(".echo")?;
//!     sky::dispatch(ptype::LUA, |req: Request| async move {
//!         let values = req.values().unwrap_or_default();
//!         let _ = req.ret_values(&values);
//!     });
//!     Ok(())
//! }
//!
//! // Elsewhere, in another service's handler:
//! async fn ask() -> sky::Result<Vec<Value>> {
//!     sky::call_values(".echo", &[Value::from("hello")]).await
//! }
//! ```
//!
//! Building: `cargo build --release --target wasm32-wasip1` produces `<crate>.wasm`, which a
//! node finds through its `wasm_path`. The ABI underneath is specified in `docs/abi.md`; the
//! raw constants are in [`skywasm_abi`], re-exported here.
//!
//! The SDK brings the service's heap: it defines `malloc` and the other C allocation
//! functions (so C code linked into a service shares it, and wasi-libc's allocator is left
//! out), taking linear memory in 4 KiB steps as it is used. A `#[global_allocator]` of your
//! own still works: the heap then serves C only, and never hands out pages another
//! allocator grew.
//!
//! Linked with its statics above the top page of its stack (the flags in this repository's
//! `.cargo/config.toml`; `docs/abi.md` §10.3), the SDK keeps its state and its heap's first
//! piece in that page, so a service that starts and idles writes one page of its memory.

mod api;
pub mod cluster;
mod debug;
mod error;
#[cfg(any(test, target_family = "wasm"))]
mod heap;
mod request;
mod runtime;
pub mod socket;
#[cfg(target_family = "wasm")]
mod spare;
pub mod upgrade;
use skywasm_abi::sys;

pub use api::*;
pub use debug::info_func;
pub use error::{Error, Result};
pub use request::{Request, Responder};
pub use runtime::{pending_calls, suspended_tasks, ReplyFuture};
pub use skywasm_abi::{error as code, ptype, Handle};
pub use skywasm_pack::{self as pack, Table, Value};

/// Runtime entry points used by [`service!`]; not a stable API.
#[doc(hidden)]
pub mod __rt {
    pub use crate::runtime::entry::{alloc, dispatch};
    pub use crate::upgrade::entry::{restore, snapshot};

    /// `skywasm_init`: installs the built-in debug protocol, then runs `start`.
    pub fn init(ptr: u32, len: u32, start: fn(&str) -> crate::Result<()>) -> i32 {
        crate::debug::install();
        crate::runtime::entry::init(ptr, len, start)
    }
}

/// Declares the service's start function, `fn(&str) -> skywasm_guest::Result<()>`, and
/// defines the exports the host calls (`skywasm_init`, `skywasm_dispatch`, `skywasm_alloc`).
/// Use it once, in the crate root.
#[macro_export]
macro_rules! service {
    ($start:path) => {
        /// Host entry: start the service with its argument string.
        #[no_mangle]
        pub extern "C" fn skywasm_init(ptr: u32, len: u32) -> i32 {
            $crate::__rt::init(ptr, len, $start)
        }

        /// Host entry: deliver one message.
        #[no_mangle]
        pub extern "C" fn skywasm_dispatch(
            ptype: u32,
            session: i32,
            source: u32,
            ptr: u32,
            len: u32,
        ) {
            $crate::__rt::dispatch(ptype, session, source, ptr, len)
        }

        /// Host entry: memory for an incoming message.
        #[no_mangle]
        pub extern "C" fn skywasm_alloc(len: u32) -> u32 {
            $crate::__rt::alloc(len)
        }

        /// Host entry: an upgrade asks for the state to hand to the new code.
        #[no_mangle]
        pub extern "C" fn skywasm_snapshot() -> i32 {
            $crate::__rt::snapshot()
        }

        /// Host entry: an upgrade hands this code the old code's state, before init.
        #[no_mangle]
        pub extern "C" fn skywasm_restore(version: u32, ptr: u32, len: u32) -> i32 {
            $crate::__rt::restore(version, ptr, len)
        }

        /// WASI reactor entry, called once before `skywasm_init`: runs static constructors.
        /// Defining it keeps the linker from wrapping every export in constructor calls.
        #[cfg(target_family = "wasm")]
        #[no_mangle]
        pub extern "C" fn _initialize() {
            extern "C" {
                fn __wasm_call_ctors();
            }
            // SAFETY: called once by the host before any other export, as WASI reactors
            // require.
            unsafe { __wasm_call_ctors() }
        }
    };
}
