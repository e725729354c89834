//! The `upgrade_state` host function (docs/abi.md §4.23): inside `skywasm_snapshot`, the
//! running code of a service being upgraded hands over the state its new code starts from.
//!
//! `upgrade_state(version, ptr, len) -> i32`: copies `len` bytes; 0, or `INVALID_ARGUMENT`
//! outside a snapshot (nobody asked). A later call in the same snapshot replaces the state.
//! A range outside the guest's memory traps.

use skywasm_abi::{error, import, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use super::memory::copy_in;
use crate::service::SavedState;
use crate::wasm::WasmState;

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::UPGRADE_STATE,
        |mut caller: Caller<'_, WasmState>,
         version: u32,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i32> {
            let bytes = copy_in(&mut caller, import::UPGRADE_STATE, ptr, len)?;
            let Some(handed) = caller.data_mut().snapshot.as_mut() else {
                return Ok(error::INVALID_ARGUMENT);
            };
            *handed = Some(SavedState {
                version,
                bytes: bytes.into_vec(),
            });
            Ok(0)
        },
    )?;
    Ok(())
}
