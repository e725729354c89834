//! The host functions a guest imports from module `skywasm` (specified in `docs/abi.md`).
//!
//! One file per capability, each with a `register` that wraps its functions into the linker:
//! [`messaging`] (send, call, redirect), [`time`] (timeout, sessions, clocks), [`command`]
//! (the skynet command set), [`log`], [`source`] (Lua sources along search paths),
//! [`socket`] (TCP sockets) and [`upgrade`] (state handed over in an upgrade). [`memory`] holds the checked guest-memory access
//! every one of them uses.
//!
//! Error policy: an expected failure (unknown name, dead address, message too large) is a
//! negative return code from `skywasm_abi::error`; a broken contract (a pointer or length
//! outside the guest's memory, a message type over 255) traps, which ends that service only.

pub(crate) mod command;
pub(crate) mod log;
pub(crate) mod memory;
pub(crate) mod messaging;
mod share;
pub(crate) mod socket;
pub(crate) mod source;
mod stm;
pub(crate) mod time;
pub(crate) mod upgrade;

use wasmtime::Linker;

use crate::wasm::WasmState;

/// Registers every `skywasm` host function.
///
/// # Errors
/// Only if a name is registered twice (a bug).
pub(crate) fn add_to_linker(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    messaging::register(linker)?;
    time::register(linker)?;
    command::register(linker)?;
    log::register(linker)?;
    source::register(linker)?;
    socket::register(linker)?;
    upgrade::register(linker)?;
    stm::register(linker)?;
    share::register(linker)?;
    Ok(())
}
