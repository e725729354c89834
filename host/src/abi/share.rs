//! The `share` host function: skynet.sharetable's tables held once by the host
//! ([`crate::share`]), for trusted services.
//!
//! `share(op, id, node, in_ptr, in_len, out_ptr, out_cap) -> i64`, `op` from
//! `skywasm_abi::share`: `CREATE` (a `skynet.pack`ed table at `in`) → the version's id;
//! `COPY`, `ADOPT`, `RELEASE` (`id`) → 0; `GET` (`id`, `node`, a packed key at `in`) and
//! `NEXT` (`id`, `node`, a packed key or nothing) → the full length of a packed answer (one
//! value; a key and its value; a table as a light userdata holding its node; `NEXT` answers
//! 0 at the end), of which what fits is written at `out`; `LEN` (`id`, `node`) → `#t`.
//! Errors: `DENIED` for an untrusted tenant's service, `INVALID_ARGUMENT` (unknown op,
//! version, node or hold; a key that does not unpack; a table holding a light userdata),
//! `TOO_LARGE` (a table over the message size limit).

use skywasm_abi::{error, import, share as op, HostError, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use super::memory::{check, write_answer};
use super::messaging::body;
use crate::share::Tree;
use crate::wasm::WasmState;

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::SHARE,
        |mut caller: Caller<'_, WasmState>,
         which: u32,
         id: u32,
         node: u32,
         in_ptr: u32,
         in_len: u32,
         out_ptr: u32,
         out_cap: u32|
         -> wasmtime::Result<i64> {
            const NAME: &str = import::SHARE;
            check(&mut caller, NAME, in_ptr, in_len)?;
            check(&mut caller, NAME, out_ptr, out_cap)?;
            if !caller.data().core.service().tenant().is_trusted() {
                return Ok(i64::from(HostError::Denied.code()));
            }
            let input = match body(&mut caller, NAME, in_ptr, in_len)? {
                Ok(input) => input,
                Err(e) => return Ok(i64::from(e.code())),
            };
            let node_shared = caller.data().core.node.clone();
            let me = caller.data().core.handle();
            let store = &node_shared.share;
            let code =
                |result: Result<(), HostError>| i64::from(result.map_or_else(|e| e.code(), |()| 0));
            let answer = |caller: &mut Caller<'_, WasmState>,
                          result: Result<Vec<u8>, HostError>|
             -> wasmtime::Result<i64> {
                Ok(match result {
                    Ok(bytes) => i64::from(write_answer(caller, NAME, out_ptr, out_cap, &bytes)?),
                    Err(e) => i64::from(e.code()),
                })
            };
            Ok(match which {
                op::CREATE => match Tree::from_packed(&input) {
                    Ok(tree) => i64::from(store.create(me, tree)),
                    Err(_) => i64::from(error::INVALID_ARGUMENT),
                },
                op::COPY => code(store.copy(id)),
                op::ADOPT => code(store.adopt(me, id)),
                op::RELEASE => code(store.release(me, id)),
                op::GET => {
                    let result = store.tree(id).and_then(|tree| tree.get(node, &input));
                    answer(&mut caller, result)?
                }
                op::NEXT => {
                    let result = store.tree(id).and_then(|tree| tree.next(node, &input));
                    answer(&mut caller, result)?
                }
                op::LEN => match store.tree(id).and_then(|tree| tree.len(node)) {
                    Ok(n) => n as i64,
                    Err(e) => i64::from(e.code()),
                },
                _ => i64::from(error::INVALID_ARGUMENT),
            })
        },
    )?;
    Ok(())
}
