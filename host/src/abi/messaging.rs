//! Messaging host functions: `send`, `send_name`, `call`, `call_name`, `redirect`.
//!
//! The body is copied out of the sender's memory into a host buffer that travels with the
//! message (the first of the message path's two copies).

use skywasm_abi::{import, ptype, Handle, HostError, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use super::memory::{copy_in, misuse, read_str};
use crate::service::Destination;
use crate::wasm::WasmState;

fn message_type(function: &str, value: u32) -> wasmtime::Result<u8> {
    if value > ptype::MAX {
        return Err(misuse(
            function,
            format_args!("message type {value} is over 255"),
        ));
    }
    Ok(value as u8)
}

/// Copies the body, or returns the TOO_LARGE code without copying an oversized one (also
/// what `stm` and `share` take in).
pub(crate) fn body(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<Result<Box<[u8]>, HostError>> {
    super::memory::check(caller, function, ptr, len)?;
    // The tenant's limit (at most the node's), before anything is copied.
    if len as usize > caller.data().core.message_size() {
        return Ok(Err(HostError::TooLarge));
    }
    copy_in(caller, function, ptr, len).map(Ok)
}

/// Resolves a name argument to where it sends (or an error code).
fn destination(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<Result<Destination, HostError>> {
    let Some(name) = read_str(caller, function, ptr, len)? else {
        return Ok(Err(HostError::InvalidArgument));
    };
    Ok(caller.data().core.destination(&name))
}

/// A destination and a body, or the ABI error code that stops the send.
type Addressed = Result<(Destination, Box<[u8]>), HostError>;

/// The destination named by `(name_ptr, name_len)` and the body at `(ptr, len)`, or the
/// first error code; both ranges are checked (a bad one traps) whatever the outcome.
fn named_message(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    (name_ptr, name_len): (u32, u32),
    (ptr, len): (u32, u32),
) -> wasmtime::Result<Addressed> {
    let dest = destination(caller, function, name_ptr, name_len)?;
    let data = body(caller, function, ptr, len)?;
    Ok(dest.and_then(|dest| data.map(|data| (dest, data))))
}

/// 0, or the refusal's ABI code.
fn code(result: Result<(), HostError>) -> i32 {
    result.err().map_or(0, HostError::code)
}

/// The call's session, or the refusal's ABI code.
fn session_or_code(result: Result<i32, HostError>) -> i32 {
    result.unwrap_or_else(HostError::code)
}

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::SEND,
        |mut caller: Caller<'_, WasmState>,
         dest: u32,
         ptype: u32,
         session: i32,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i32> {
            let ptype = message_type(import::SEND, ptype)?;
            let data = match body(&mut caller, import::SEND, ptr, len)? {
                Ok(data) => data,
                Err(error) => return Ok(error.code()),
            };
            Ok(code(caller.data_mut().core.send(
                Handle(dest),
                ptype,
                session,
                data,
            )))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SEND_NAME,
        |mut caller: Caller<'_, WasmState>,
         name_ptr: u32,
         name_len: u32,
         ptype: u32,
         session: i32,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i32> {
            let ptype = message_type(import::SEND_NAME, ptype)?;
            let named = (name_ptr, name_len);
            let (dest, data) =
                match named_message(&mut caller, import::SEND_NAME, named, (ptr, len))? {
                    Ok(message) => message,
                    Err(error) => return Ok(error.code()),
                };
            let core = &mut caller.data_mut().core;
            Ok(code(match dest {
                Destination::At(dest) => core.send(dest, ptype, session, data),
                Destination::Global(name) => core.send_global(&name, ptype, session, data),
            }))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::CALL,
        |mut caller: Caller<'_, WasmState>,
         dest: u32,
         ptype: u32,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i32> {
            let ptype = message_type(import::CALL, ptype)?;
            let data = match body(&mut caller, import::CALL, ptr, len)? {
                Ok(data) => data,
                Err(error) => return Ok(error.code()),
            };
            Ok(session_or_code(caller.data_mut().core.call(
                Handle(dest),
                ptype,
                data,
            )))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::CALL_NAME,
        |mut caller: Caller<'_, WasmState>,
         name_ptr: u32,
         name_len: u32,
         ptype: u32,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i32> {
            let ptype = message_type(import::CALL_NAME, ptype)?;
            let named = (name_ptr, name_len);
            let (dest, data) =
                match named_message(&mut caller, import::CALL_NAME, named, (ptr, len))? {
                    Ok(message) => message,
                    Err(error) => return Ok(error.code()),
                };
            let core = &mut caller.data_mut().core;
            Ok(session_or_code(match dest {
                Destination::At(dest) => core.call(dest, ptype, data),
                Destination::Global(name) => core.call_global(&name, ptype, data),
            }))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::REDIRECT,
        |mut caller: Caller<'_, WasmState>,
         dest: u32,
         source: u32,
         ptype: u32,
         session: i32,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i32> {
            let ptype = message_type(import::REDIRECT, ptype)?;
            let data = match body(&mut caller, import::REDIRECT, ptr, len)? {
                Ok(data) => data,
                Err(error) => return Ok(error.code()),
            };
            Ok(code(caller.data_mut().core.redirect(
                Handle(dest),
                Handle(source),
                ptype,
                session,
                data,
            )))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::MULTICAST,
        |mut caller: Caller<'_, WasmState>,
         source: u32,
         session: i32,
         ptr: u32,
         len: u32,
         dests_ptr: u32,
         dests_count: u32|
         -> wasmtime::Result<i32> {
            const NAME: &str = import::MULTICAST;
            if !caller.data().core.capabilities.redirect {
                return Ok(HostError::Denied.code());
            }
            let dests_len = dests_count.saturating_mul(4);
            super::memory::check(&mut caller, NAME, dests_ptr, dests_len)?;
            // The list is bounded as a message body is.
            if dests_len as usize > caller.data().core.message_size() {
                return Ok(HostError::TooLarge.code());
            }
            let dests: Vec<Handle> = copy_in(&mut caller, NAME, dests_ptr, dests_len)?
                .chunks_exact(4)
                .map(|b| Handle(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect();
            let data = match body(&mut caller, NAME, ptr, len)? {
                Ok(data) => data,
                Err(error) => return Ok(error.code()),
            };
            let delivered = caller.data_mut().core.multicast(
                Handle(source),
                session,
                std::sync::Arc::from(data),
                &dests,
            );
            Ok(i32::try_from(delivered).unwrap_or(i32::MAX))
        },
    )?;
    Ok(())
}
