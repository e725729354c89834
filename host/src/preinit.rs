//! Pre-initialization: a module that exports `skywasm_preinit` (snlua does) is run once when
//! the node loads it — `_initialize`, then `skywasm_preinit` — and its memory and globals are
//! snapshotted into a new module (wasmtime-wizer's instrument/snapshot). Every service then
//! starts from that image, copy-on-write, instead of redoing the work (for snlua: creating
//! the Lua state and loading the skynet library).
//!
//! During pre-initialization the module may use WASI (clocks, random; nothing preopened;
//! what it writes to stdout and stderr is dropped) but no `skywasm` host function: those
//! trap, since there is no service yet. The snapshot drops `_initialize` and
//! `skywasm_preinit`, so neither runs again.
//!
//! Bounds: it runs like any call into a guest — under a CPU budget ([`PreinitLimits::cpu`],
//! the asking tenant's `cpu_limit`, counted by epoch ticks), with its memory capped
//! ([`PreinitLimits::memory`]), and it ends at the next epoch tick once the node stops. It
//! runs on the module's compile thread (`crate::module`), never inside a service's call.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use anyhow::Context as _;
use skywasm_abi::export;
use wasmtime::{Engine, Linker, Memory, Module, Store, UpdateDeadline, Val};
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

use crate::tenant::{MemoryCharge, Tenant};
use crate::wasm::budget::{Budget, Exhausted};
use crate::wasm::wasi::{Stdio, WasiHost};

/// What a pre-initialization may use.
#[derive(Debug, Clone)]
pub struct PreinitLimits {
    /// CPU time of guest code.
    pub cpu: Duration,
    /// Largest linear memory, in bytes.
    pub memory: u64,
    /// The tenant whose `tenant_memory` the linear memory counts against while the
    /// pre-initialization runs (none: the node's own load).
    pub account: Option<Arc<Tenant>>,
    /// Set when the node stops: the pre-initialization then ends at its next epoch tick.
    pub stop: Arc<AtomicBool>,
}

/// The data of the pre-initialization's Store.
struct PreinitState {
    stdio: Stdio,
    memory: Option<Memory>,
    limits: PreinitLimits,
    /// Requests refused so far (their log lines are thinned out).
    refusals: u64,
    /// Memory charged to the asking tenant (given back when the Store is dropped).
    charge: MemoryCharge,
}

impl WasiHost for PreinitState {
    fn stdio(&mut self) -> &mut Stdio {
        &mut self.stdio
    }

    fn memory_slot(&mut self) -> &mut Option<Memory> {
        &mut self.memory
    }

    fn output_line(&mut self, _line: &[u8]) {}

    fn interruption(&self) -> Option<wasmtime::Error> {
        self.limits
            .stop
            .load(Ordering::Acquire)
            .then(|| wasmtime::Error::msg("interrupted: the node is stopping"))
    }

    fn out_of_budget(&self, _: Exhausted) -> wasmtime::Error {
        // Its thread runs nothing else: the only budget is its own.
        wasmtime::Error::msg(format!(
            "ran past its CPU limit of {} ms (maybe in an endless loop)",
            self.limits.cpu.as_millis()
        ))
    }

    fn refused(&mut self, what: &str) {
        self.refusals += 1;
        if crate::log::worth_logging(self.refusals) {
            tracing::warn!(
                "pre-initialization: {what} ({} refused so far)",
                self.refusals
            );
        }
    }
}

impl wasmtime::ResourceLimiter for PreinitState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self
            .charge
            .grow(current, desired, self.limits.memory)
            .is_ok())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= crate::wasm::MAX_TABLE_ELEMENTS)
    }
}

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

/// Runs the module's pre-initialization within `limits` and returns the snapshot module's
/// bytes.
///
/// # Errors
/// The module fails to instrument, compile, instantiate or run its initialization (a trap,
/// including a call to a `skywasm` host function, running past its CPU limit, or the node
/// stopping), or the snapshot cannot be written.
pub fn preinitialize(
    engine: &Engine,
    bytes: &[u8],
    limits: &PreinitLimits,
) -> anyhow::Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    wizer.init_func(PREINIT_EXPORT);
    let (cx, instrumented) = wizer
        .instrument(bytes)
        .map_err(anyhow::Error::from)
        .context("instrumenting for pre-init")?;
    let module = Module::new(engine, &instrumented)
        .map_err(anyhow::Error::from)
        .context("compiling the instrumented module")?;

    let mut linker: Linker<PreinitState> = Linker::new(engine);
    crate::wasm::wasi::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
    linker
        .define_unknown_imports_as_traps(&module)
        .map_err(anyhow::Error::from)?;
    let mut store = Store::new(
        engine,
        PreinitState {
            stdio: Stdio::default(),
            memory: None,
            limits: limits.clone(),
            refusals: 0,
            charge: MemoryCharge::new(limits.account.clone()),
        },
    );
    store.limiter(|state| state);
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        if let Some(stop) = state.interruption() {
            return Err(stop);
        }
        Budget::tick(crate::monitor::EPOCH_PERIOD).map_err(|e| state.out_of_budget(e))?;
        Ok(UpdateDeadline::Continue(1))
    });
    store.set_epoch_deadline(1);
    let _budget = Budget::enter(limits.cpu);
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
    store: &'a mut Store<PreinitState>,
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
