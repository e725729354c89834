//! Pre-initialization: a module that exports `skywasm_preinit` (snlua does) is run once when
//! the node loads it — `_initialize`, then `skywasm_preinit` — and its memory and globals are
//! snapshotted into a new module (wasmtime-wizer's instrument/snapshot). Every service then
//! starts from that image, copy-on-write, instead of redoing the work (for snlua: creating
//! the Lua state and loading the skynet library).
//!
//! During pre-initialization the module may use WASI (clocks, random; nothing preopened) but
//! no `skywasm` host function: those trap, since there is no service yet. The snapshot drops
//! `_initialize` and `skywasm_preinit`, so neither runs again.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use anyhow::Context as _;
use skywasm_abi::export;
use wasmtime::{Engine, Linker, Module, Store, Val};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

/// The optional export that asks for pre-initialization.
pub const PREINIT_EXPORT: &str = export::PREINIT;

/// Whether the wasm binary `bytes` exports [`PREINIT_EXPORT`] (false for text or bad bytes:
/// those are reported by compilation).
pub fn wants_preinit(bytes: &[u8]) -> bool {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::ExportSection(exports)) => {
                return exports
                    .into_iter()
                    .any(|e| e.is_ok_and(|e| e.name == PREINIT_EXPORT));
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Runs the module's pre-initialization and returns the snapshot module's bytes.
///
/// # Errors
/// The module fails to instrument, compile, instantiate or run its initialization (a trap,
/// including a call to a `skywasm` host function), or the snapshot cannot be written.
pub fn preinitialize(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    wizer.init_func(PREINIT_EXPORT);
    let (cx, instrumented) = wizer
        .instrument(bytes)
        .map_err(anyhow::Error::from)
        .context("instrumenting for pre-init")?;
    let module = Module::new(engine, &instrumented)
        .map_err(anyhow::Error::from)
        .context("compiling the instrumented module")?;

    let mut linker: Linker<WasiP1Ctx> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |ctx| ctx).map_err(anyhow::Error::from)?;
    linker
        .define_unknown_imports_as_traps(&module)
        .map_err(anyhow::Error::from)?;
    let wasi = wasmtime_wasi::WasiCtxBuilder::new().build_p1();
    let mut store = Store::new(engine, wasi);
    // The node's engine interrupts by epoch; pre-init runs to completion.
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = linker
        .instantiate(&mut store, &module)
        .map_err(anyhow::Error::from)
        .context("instantiating for pre-init")?;
    for name in [export::INITIALIZE, PREINIT_EXPORT] {
        if let Ok(func) = instance.get_typed_func::<(), ()>(&mut store, name) {
            func.call(&mut store, ())
                .map_err(anyhow::Error::from)
                .with_context(|| format!("`{name}` failed during pre-init"))?;
        }
    }
    let mut state = Snapshotted {
        store: &mut store,
        instance,
    };
    ready(wizer.snapshot(&cx, &mut state))
        .map_err(anyhow::Error::from)
        .context("writing the snapshot")
}

/// The instance whose state the snapshot copies.
struct Snapshotted<'a> {
    store: &'a mut Store<WasiP1Ctx>,
    instance: wasmtime::Instance,
}

impl InstanceState for Snapshotted<'_> {
    async fn global_get(&mut self, name: &str, _: wasmparser::ValType) -> SnapshotVal {
        let global = self
            .instance
            .get_global(&mut *self.store, name)
            .expect("wizer asks for globals it exported");
        match global.get(&mut *self.store) {
            Val::I32(x) => SnapshotVal::I32(x),
            Val::I64(x) => SnapshotVal::I64(x),
            Val::F32(x) => SnapshotVal::F32(x),
            Val::F64(x) => SnapshotVal::F64(x),
            Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("global `{name}` has a type wizer cannot snapshot: {other:?}"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self
            .instance
            .get_memory(&mut *self.store, name)
            .expect("wizer asks for memories it exported");
        contents(memory.data(&*self.store));
    }
}

/// Drives a future that never waits (the snapshot's accessors complete at once).
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}
