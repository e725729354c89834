//! The `log` host function: one line to the node's log, from this service (skynet's
//! `skynet_error`), within its tenant's `log_rate`. Invalid UTF-8 is shown with
//! replacement characters.

use skywasm_abi::{import, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use super::memory::copy_in;
use crate::wasm::WasmState;

/// Longest line a guest can log; longer ones are cut (and say so).
const MAX_LOG_LINE: usize = 64 << 10;

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::LOG,
        |mut caller: Caller<'_, WasmState>, ptr: u32, len: u32| -> wasmtime::Result<()> {
            super::memory::check(&mut caller, import::LOG, ptr, len)?;
            let shown = len.min(MAX_LOG_LINE as u32);
            let bytes = copy_in(&mut caller, import::LOG, ptr, shown)?;
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if shown < len {
                text.push_str(&format!(" ... ({len} bytes, cut)"));
            }
            let core = &caller.data().core;
            core.service().guest_log(core.node(), &text);
            Ok(())
        },
    )?;
    Ok(())
}
