//! The overflow tiers: wasm services past the fast pool, so that a node has no ceiling at
//! the pool's size.
//!
//! The fast pool reserves 4 GiB of address space for each linear memory and each GC heap,
//! so compiled code needs no explicit bounds checks. Past the pool (`wasm_fast_services`)
//! services run on engines whose memories are allocated when an instance starts: first the
//! *wide* tier (`wasm_wide_services`), whose memories are reserved at 4 GiB too, with a
//! small GC heap (so that its code is as fast as the pool's, and twice as many fit in the
//! address space), then the *checked* tier, up to `wasm_max_services`, whose memories are
//! reserved at `wasm_memory` and bounds-checked: a 64-bit process has room for about 16,000
//! services of 4 GiB, and nothing is reserved for services that do not exist. A module's
//! code for a tier is compiled on a thread of its own once the capacity before that tier is
//! three quarters full, so that the launch that first overflows seldom waits for it; one
//! that does waits within its call's CPU budget, as a launch waiting for a first compile
//! does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use wasmtime::{Engine, InstancePre, Linker, Module};

use crate::lifecycle::LaunchError;
use crate::sync::lock_plain;
use crate::wasm::WasmState;

/// What comes before a tier: when it is crowded, the tier's code is compiled.
pub(crate) enum Before {
    /// The fast pool: its engine, whose allocator says how many of its slots are taken,
    /// and how many it holds.
    Pool(Engine, u64),
    /// Another tier.
    Tier(Arc<OverflowEngine>),
}

/// One overflow tier: its engine and how many services it may hold.
pub struct OverflowEngine {
    /// Engine of the services in this tier.
    pub(crate) engine: Engine,
    linker: Linker<WasmState>,
    /// What fills before this tier.
    before: Before,
    /// Services it may hold (`None`: as many as the node may have).
    cap: Option<u64>,
    /// Services it holds now (counted when it has a cap).
    live: AtomicU64,
    /// Set when the node stops: a launch waiting for overflow code gives up.
    stopping: Arc<AtomicBool>,
}

impl OverflowEngine {
    /// A tier on `engine` after `before`, holding at most `cap` services.
    pub(crate) fn new(
        engine: Engine,
        linker: Linker<WasmState>,
        before: Before,
        cap: Option<u64>,
        stopping: Arc<AtomicBool>,
    ) -> OverflowEngine {
        OverflowEngine {
            engine,
            linker,
            before,
            cap,
            live: AtomicU64::new(0),
            stopping,
        }
    }

    /// True once three quarters of what comes before this tier are taken: time to have the
    /// tier's code of what is launched ready.
    fn crowded(&self) -> bool {
        match &self.before {
            Before::Pool(pool, slots) => pool
                .pooling_allocator_metrics()
                .is_some_and(|pool| pool.core_instances().saturating_mul(4) >= slots * 3),
            Before::Tier(tier) => tier
                .cap
                .is_some_and(|cap| tier.live.load(Ordering::Relaxed).saturating_mul(4) >= cap * 3),
        }
    }

    /// A place for one more service in this tier, given back when the returned slot drops
    /// (with the service's store); `None` when the tier is full.
    pub(crate) fn claim(self: &Arc<Self>) -> Option<TierSlot> {
        let Some(cap) = self.cap else {
            return Some(TierSlot(None));
        };
        if self.live.fetch_add(1, Ordering::Relaxed) < cap {
            Some(TierSlot(Some(self.clone())))
        } else {
            self.live.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

/// A service's place in a capped tier, held in its store's data and given back when that
/// drops.
pub struct TierSlot(Option<Arc<OverflowEngine>>);

impl Drop for TierSlot {
    fn drop(&mut self) {
        if let Some(tier) = &self.0 {
            tier.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One module's code for an overflow tier, compiled when first wanted.
pub struct OverflowCode {
    /// Its tier.
    pub(crate) tier: Arc<OverflowEngine>,
    /// The module's name (for errors).
    name: String,
    /// The bytes the fast code was compiled from (a pre-initialized module's snapshot).
    bytes: Arc<[u8]>,
    state: Mutex<CodeState>,
    ready: Condvar,
}

/// Where a module's overflow code is.
enum CodeState {
    /// Not asked for yet.
    Idle,
    /// Being compiled on a thread of its own.
    Compiling,
    /// Compiled and linked, or why not.
    Done(Result<InstancePre<WasmState>, String>),
}

impl OverflowCode {
    /// The code of module `name` for `tier`, compiled from `bytes`, not compiled yet.
    pub(crate) fn new(tier: Arc<OverflowEngine>, name: &str, bytes: Arc<[u8]>) -> OverflowCode {
        OverflowCode {
            tier,
            name: name.into(),
            bytes,
            state: Mutex::new(CodeState::Idle),
            ready: Condvar::new(),
        }
    }

    /// Starts compiling the code in the background when what comes before its tier is
    /// crowded (a launch calls it before it instantiates: a relaxed load or two when not).
    pub(crate) fn prepare_if_crowded(self: &Arc<Self>) {
        if self.tier.crowded() {
            self.prepare();
        }
    }

    /// Starts compiling the code on a thread of its own, unless that has begun.
    fn prepare(self: &Arc<Self>) {
        let mut state = lock_plain(&self.state);
        if !matches!(*state, CodeState::Idle) {
            return;
        }
        let (code, done) = (self.clone(), self.clone());
        let spawned = super::spawn_compile(
            move || code.compile(),
            move |outcome| {
                *lock_plain(&done.state) = CodeState::Done(outcome.unwrap_or_else(Err));
                done.ready.notify_all();
            },
        );
        *state = match spawned {
            Ok(_) => CodeState::Compiling,
            // Asked again by the next launch.
            Err(_) => CodeState::Idle,
        };
    }

    fn compile(&self) -> Result<InstancePre<WasmState>, String> {
        let module = Module::new(&self.tier.engine, &self.bytes).map_err(|e| format!("{e:#}"))?;
        self.tier
            .linker
            .instantiate_pre(&module)
            .map_err(|e| format!("{e:#}"))
    }

    /// The code, compiled now if it is not yet. Inside a guest call the wait is bounded by
    /// what is left of the call's CPU budget and charged to it; `KILL`, a signal and the
    /// node stopping end it too. The compile goes on, and a later launch takes its result.
    ///
    /// # Errors
    /// [`LaunchError::Limit`] when the wait ends first, [`LaunchError::Invalid`] when the
    /// engine could not compile the code.
    pub(crate) fn instance_pre(self: &Arc<Self>) -> Result<InstancePre<WasmState>, LaunchError> {
        let name = &self.name;
        self.prepare();
        let done =
            super::wait_within_budget(&self.state, &self.ready, &self.tier.stopping, |state| {
                match state {
                    CodeState::Done(done) => Some(done.clone()),
                    _ => None,
                }
            })
            .map_err(|(why, waited)| {
                LaunchError::Limit(format!(
                    "the fast pool is full and the overflow code of `{name}` is still being \
                 compiled ({} ms so far): {why}",
                    waited.as_millis()
                ))
            })?;
        done.map_err(|e| {
            LaunchError::Invalid(name.into(), format!("compiling its overflow code: {e}"))
        })
    }
}
