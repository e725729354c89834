//! The `command` host function: skynet's text command set (see [`crate::command`]).
//!
//! `command(cmd_ptr, cmd_len, param_ptr, param_len, out_ptr, out_cap) -> i32`: runs the
//! command; on success writes up to `out_cap` bytes of the result at `out_ptr` and returns the
//! result's full length. A return value above `out_cap` means the result was cut: results are
//! addresses, numbers and names except for `GETENV`, whose value can be long and which can be
//! repeated with a larger buffer (a guest that passes a buffer of 256 bytes or more never sees
//! a cut result from any other command). On failure returns a negative error code.

use skywasm_abi::{error, import, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use super::memory::{check, read_str, write_answer};
use crate::wasm::WasmState;

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::COMMAND,
        |mut caller: Caller<'_, WasmState>,
         cmd_ptr: u32,
         cmd_len: u32,
         param_ptr: u32,
         param_len: u32,
         out_ptr: u32,
         out_cap: u32|
         -> wasmtime::Result<i32> {
            const NAME: &str = import::COMMAND;
            check(&mut caller, NAME, out_ptr, out_cap)?;
            let command = read_str(&mut caller, NAME, cmd_ptr, cmd_len)?;
            let param = read_str(&mut caller, NAME, param_ptr, param_len)?;
            let (Some(command), Some(param)) = (command, param) else {
                return Ok(error::INVALID_ARGUMENT);
            };
            let result = crate::command::execute(&mut caller.data_mut().core, &command, &param);
            match result {
                Ok(text) => write_answer(&mut caller, NAME, out_ptr, out_cap, text.as_bytes()),
                Err(error) => Ok(error.code()),
            }
        },
    )?;
    Ok(())
}
