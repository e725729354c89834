//! The `stm` host function: skynet.stm's objects ([`crate::stm`]), for trusted services.
//!
//! `stm(op, id, seen, ptr, len) -> i64`, `op` from `skywasm_abi::stm`:
//! `NEW` (the bytes at `ptr, len`) → the new object's id; `UPDATE` (`id`, bytes) → 0;
//! `COPY` (`id`: a copy for a reader, in transit) → 0; `ADOPT` (`id`: the caller takes a
//! copy as its reader) → 0; `RELEASE_WRITER`/`RELEASE_READER` (`id`) → 0; `READ` (`id`, the
//! version `seen` last) → 0 when nothing changed, else the full length of the answer — the
//! version (8 bytes, little-endian) then the bytes — of which what fits is written at
//! `ptr, len` (a guest whose buffer was too small asks again with a larger one). Errors:
//! `DENIED` for an untrusted tenant's service, `NOT_FOUND` (`READ` after the writer let
//! go), `INVALID_ARGUMENT` (unknown op or object), `TOO_LARGE` (bytes over the message
//! size limit).

use skywasm_abi::{error, import, stm as op, HostError, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use super::memory::{check, write_answer};
use super::messaging::body;
use crate::stm::Read;
use crate::wasm::WasmState;

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::STM,
        |mut caller: Caller<'_, WasmState>,
         which: u32,
         id: u32,
         seen: i64,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i64> {
            const NAME: &str = import::STM;
            check(&mut caller, NAME, ptr, len)?;
            if !caller.data().core.service().tenant().is_trusted() {
                return Ok(i64::from(HostError::Denied.code()));
            }
            let node = caller.data().core.node.clone();
            let me = caller.data().core.handle();
            let store = &node.stm;
            let done =
                |result: Result<(), HostError>| i64::from(result.map_or_else(|e| e.code(), |()| 0));
            Ok(match which {
                op::NEW => match body(&mut caller, NAME, ptr, len)? {
                    Ok(bytes) => i64::from(store.create(me, bytes.into())),
                    Err(e) => i64::from(e.code()),
                },
                op::UPDATE => match body(&mut caller, NAME, ptr, len)? {
                    Ok(bytes) => done(store.update(me, id, bytes.into())),
                    Err(e) => i64::from(e.code()),
                },
                op::COPY => done(store.copy(id)),
                op::ADOPT => done(store.adopt(me, id)),
                op::RELEASE_WRITER => done(store.release(me, id, true)),
                op::RELEASE_READER => done(store.release(me, id, false)),
                op::READ => match store.read(id, seen as u64) {
                    Ok(Read::Unchanged) => 0,
                    Ok(Read::Gone) => i64::from(error::NOT_FOUND),
                    Ok(Read::Changed(version, bytes)) => {
                        let mut answer = Vec::with_capacity(8 + bytes.len());
                        answer.extend_from_slice(&version.to_le_bytes());
                        answer.extend_from_slice(&bytes);
                        i64::from(write_answer(&mut caller, NAME, ptr, len, &answer)?)
                    }
                    Err(e) => i64::from(e.code()),
                },
                _ => i64::from(error::INVALID_ARGUMENT),
            })
        },
    )?;
    Ok(())
}
