//! The overflow tier: wasm services past the fast pool, so that a node has no ceiling at
//! the pool's size.
//!
//! The fast pool reserves 4 GiB of address space for each linear memory and each GC heap,
//! so compiled code needs no explicit bounds checks; a 64-bit process has room for about
//! 8,000 such services (two reservations each). Past the pool (`wasm_fast_services`)
//! services run on a second engine whose memories are allocated when an instance starts,
//! each reserved at `wasm_memory` and bounds-checked, up to `wasm_max_services`: nothing is
//! reserved for services that do not exist. A module's code for that engine is compiled
//! on a thread of its own once the fast pool is three quarters full, so that the launch
//! that first overflows seldom waits for it; one that does waits within its call's CPU
//! budget, as a launch waiting for a first compile does.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};

use wasmtime::{Engine, InstancePre, Linker, Module};

use crate::lifecycle::LaunchError;
use crate::sync::lock_plain;
use crate::wasm::WasmState;

/// The overflow engine and what tells when the fast pool fills.
pub struct OverflowEngine {
    /// Engine of the services past the pool.
    pub(crate) engine: Engine,
    linker: Linker<WasmState>,
    /// The pool's engine, whose allocator says how many of its slots are taken.
    fast: Engine,
    /// Instances the fast pool holds.
    fast_slots: u64,
    /// Set when the node stops: a launch waiting for overflow code gives up.
    stopping: Arc<AtomicBool>,
}

impl OverflowEngine {
    /// The overflow tier beside the pool of `fast`, which holds `fast_slots` instances.
    pub(crate) fn new(
        engine: Engine,
        linker: Linker<WasmState>,
        fast: Engine,
        fast_slots: u32,
        stopping: Arc<AtomicBool>,
    ) -> OverflowEngine {
        OverflowEngine {
            engine,
            linker,
            fast,
            fast_slots: u64::from(fast_slots),
            stopping,
        }
    }

    /// True once three quarters of the fast pool's instances are taken: time to have the
    /// overflow code of what is launched ready.
    fn crowded(&self) -> bool {
        self.fast
            .pooling_allocator_metrics()
            .is_some_and(|pool| pool.core_instances().saturating_mul(4) >= self.fast_slots * 3)
    }
}

/// One module's code for the overflow engine, compiled when first wanted.
pub struct OverflowCode {
    tier: Arc<OverflowEngine>,
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
    /// The overflow code of module `name` compiled from `bytes`, not compiled yet.
    pub(crate) fn new(tier: Arc<OverflowEngine>, name: &str, bytes: Arc<[u8]>) -> OverflowCode {
        OverflowCode {
            tier,
            name: name.into(),
            bytes,
            state: Mutex::new(CodeState::Idle),
            ready: Condvar::new(),
        }
    }

    /// Starts compiling the code in the background when the fast pool is crowded (a launch
    /// calls it before it instantiates: one relaxed load when the pool is not).
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
        let code = self.clone();
        let spawned = std::thread::Builder::new()
            .name("skywasm-compile".into())
            .stack_size(super::COMPILE_STACK)
            .spawn(move || {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| code.compile()))
                        .unwrap_or_else(|panic| {
                            Err(format!(
                                "the host panicked compiling it: {}",
                                crate::sync::panic_text(&*panic)
                            ))
                        });
                *lock_plain(&code.state) = CodeState::Done(outcome);
                code.ready.notify_all();
            });
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
