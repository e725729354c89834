//! Time and session host functions: `timeout`, `genid`, `self_handle`, `now`, `hpc`.

use skywasm_abi::{import, HostError, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use crate::wasm::WasmState;

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::TIMEOUT,
        |mut caller: Caller<'_, WasmState>, centiseconds: i32| -> i32 {
            let core = &mut caller.data_mut().core;
            crate::command::timeout(core, centiseconds as i64).unwrap_or_else(HostError::code)
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::GENID,
        |mut caller: Caller<'_, WasmState>| -> i32 { caller.data_mut().core.new_session() },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SELF_HANDLE,
        |caller: Caller<'_, WasmState>| -> u32 { caller.data().core.handle().0 },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::NOW,
        |caller: Caller<'_, WasmState>| -> i64 { caller.data().core.node().clock.now() as i64 },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::HPC,
        |caller: Caller<'_, WasmState>| -> i64 { caller.data().core.node().clock.hpc() as i64 },
    )?;
    Ok(())
}
