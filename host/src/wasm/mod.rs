//! A service that is a wasm instance: its own Store and linear memory.
//!
//! Starting one: instantiate the module's `InstancePre` in a fresh Store (from the pool),
//! populate the pages its init is known to write (`prefault.rs`), call `_initialize` if
//! exported, place the argument string with the guest's `skywasm_alloc`, call
//! `skywasm_init`. Dispatching a message: place the body with `skywasm_alloc`, call
//! `skywasm_dispatch`. A trap anywhere ends the instance: the Store is dropped and its
//! memory goes back to the pool.
//!
//! The Store's data ([`WasmState`]) holds the service's [`ServiceCore`], so host functions
//! reach the node through it, and its WASI standard streams (`wasi/`).
//!
//! CPU: every call into the guest runs under a CPU budget (`budget.rs`) of its tenant's
//! `cpu_limit`; each epoch tick of running guest code charges one epoch period to it, and a
//! call nested in another on the same thread (a `LAUNCH`'s init inside a message) shares the
//! budget of the call around it.

pub(crate) mod budget;
pub(crate) mod prefault;
pub(crate) mod wasi;

#[cfg(test)]
mod tests;

use skywasm_abi::export;
use wasmtime::{
    Instance, Memory, PoolConcurrencyLimitError, Store, TypedFunc, UpdateDeadline, WasmBacktrace,
    WasmParams, WasmResults,
};

use self::budget::{Budget, Enclosing, Exhausted};
use self::wasi::{Stdio, WasiHost};
use crate::lifecycle::LaunchError;
use crate::module::{WasmModule, SIGNAL_EXPORT};
use crate::mq::Message;
use crate::service::{Behavior, Fault, InterruptReason, SavedState, ServiceCore, Snapshot};

/// The data of a service's Store.
pub struct WasmState {
    /// The node-facing state of the service.
    pub(crate) core: ServiceCore,
    /// The guest's exported memory, looked up once.
    pub(crate) memory: Option<Memory>,
    /// The guest's `skywasm_interrupt`, if it exports one.
    interrupt: Option<TypedFunc<(), ()>>,
    /// Its WASI standard streams.
    stdio: Stdio,
    /// The directory of a Lua service found through a directory pattern (`load_source`
    /// searches it for modules before `lua_path`, as skynet's loader does).
    pub(crate) service_dir: Option<Box<str>>,
    /// The text of this service's last failed socket call (`socket_query(QUERY_ERROR)`).
    pub(crate) socket_error: Option<Box<str>>,
    /// Epoch ticks the current call into the guest has run (for the soft CPU stage).
    ticks: u32,
    /// The node's epoch count when the current call began (how long it has run, for the
    /// CPU-limit log line).
    call_epoch: u64,
    /// The memory limits of the service and its tenant.
    limiter: MemoryLimiter,
    /// Its place in a capped overflow tier, given back with the store.
    tier_slot: Option<crate::module::overflow::TierSlot>,
    /// While `skywasm_snapshot` runs: what it handed over with `upgrade_state` so far.
    pub(crate) snapshot: Option<Option<SavedState>>,
}

/// Enforces the tenant's memory limits when the guest grows a memory: one service's size,
/// and the sum over the tenant's services. A refused `memory.grow` returns -1 to the guest
/// (Rust's allocator then aborts, Lua raises "not enough memory"); the first refusal of a
/// service is logged.
struct MemoryLimiter {
    tenant: std::sync::Arc<crate::tenant::Tenant>,
    node: std::sync::Weak<crate::shared::NodeShared>,
    handle: skywasm_abi::Handle,
    /// What this service has charged to the tenant.
    charge: crate::tenant::MemoryCharge,
    logged: bool,
}

impl MemoryLimiter {
    fn refuse(&mut self, desired: usize, why: &str) {
        self.tenant
            .activity
            .refusals
            .add(crate::tenant::RefusalKind::Memory);
        if std::mem::replace(&mut self.logged, true) {
            return;
        }
        if let Some(node) = self.node.upgrade() {
            node.log(
                self.handle,
                &format!(
                    "memory limit: growing to {desired} bytes refused: {why} (tenant `{}`)",
                    self.tenant.name()
                ),
            );
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        use crate::tenant::MemoryRefusal;
        let limit = self.tenant.spec.limits.memory;
        let why = match self.charge.grow(current, desired, limit) {
            Ok(()) => return Ok(true),
            Err(MemoryRefusal::Instance(limit)) => {
                format!("over the limit of {limit} bytes per service")
            }
            Err(MemoryRefusal::Tenant(total)) => {
                format!("the tenant's services would use over {total} bytes")
            }
        };
        self.refuse(desired, &why);
        Ok(false)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Largest table of a guest (function references): far above what compiled code needs.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// A store for a starting service on `engine`, its memory limiter installed, armed for
/// the start's call: every epoch tick (10 ms) while guest code runs it checks whether the
/// running call was interrupted (KILL, SIGNAL 0) or the node is stopping, and stops it if
/// so; a guest with `skywasm_interrupt` is told of SIGNAL 0 instead, at this safe point.
/// `soft` is the soft CPU stage in ticks (0: none).
fn armed_store(
    engine: &wasmtime::Engine,
    state: WasmState,
    service: &std::sync::Arc<crate::service::Service>,
    soft: u32,
) -> Store<WasmState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    let interrupted = service.clone();
    store.epoch_deadline_callback(move |mut ctx| {
        let state = ctx.data_mut();
        if let Some(stop) = state.interruption() {
            return Err(stop);
        }
        if let Err(exhausted) = Budget::tick(crate::monitor::EPOCH_PERIOD) {
            return Err(state.out_of_budget(exhausted));
        }
        state.ticks = state.ticks.saturating_add(1);
        let soft_limit = soft > 0 && state.ticks == soft.saturating_add(1);
        if soft_limit {
            interrupted.note_interrupt_reason(InterruptReason::Cpu);
        }
        let signalled = interrupted.take_soft_interrupt();
        if signalled {
            interrupted.note_interrupt_reason(InterruptReason::Signal);
        }
        if signalled || soft_limit {
            if let Some(interrupt) = ctx.data().interrupt.clone() {
                // The nested call checks the epoch too, while this callback is out of
                // the store: give it the next tick (it only sets a flag in the guest).
                ctx.set_epoch_deadline(1);
                interrupt.call(&mut ctx, ())?;
            }
        }
        Ok(UpdateDeadline::Continue(1))
    });
    store.data_mut().call_epoch = store.data().core.node().monitor.epochs();
    store.set_epoch_deadline(1);
    store
}

/// Epoch ticks (of [`crate::monitor::EPOCH_PERIOD`]) in `ms` milliseconds, rounded up.
fn ticks_in(ms: u64) -> u32 {
    let period = crate::monitor::EPOCH_PERIOD.as_millis() as u64;
    u32::try_from(ms.div_ceil(period)).unwrap_or(u32::MAX)
}

impl WasiHost for WasmState {
    fn stdio(&mut self) -> &mut Stdio {
        &mut self.stdio
    }

    fn memory_slot(&mut self) -> &mut Option<Memory> {
        &mut self.memory
    }

    fn output_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        self.core.service().guest_log(self.core.node(), &text);
    }

    fn interruption(&self) -> Option<wasmtime::Error> {
        let stopping = self.core.node().is_quitting();
        let stop = stopping || self.core.service().should_interrupt() || Enclosing::interrupted();
        stop.then(interrupted)
    }

    fn out_of_budget(&self, exhausted: Exhausted) -> wasmtime::Error {
        let tenant = self.core.service().tenant();
        let ran = self
            .core
            .node()
            .monitor
            .epochs()
            .saturating_sub(self.call_epoch)
            * crate::monitor::EPOCH_PERIOD.as_millis() as u64;
        cpu_limit_error(tenant.spec.limits.cpu_ms, tenant.name(), exhausted, ran)
    }

    fn refused(&mut self, what: &str) {
        self.core
            .service()
            .tenant()
            .activity
            .refusals
            .add(crate::tenant::RefusalKind::HostCall);
        let refused = self
            .core
            .service()
            .stats
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if crate::log::worth_logging(refused) {
            let tenant = self.core.service().tenant().name().to_string();
            self.core.log(&format!(
                "{what} (tenant `{tenant}`; {refused} refused so far)"
            ));
        }
    }
}

/// Why the host stopped a guest's call: the error its trap carries, so the fault can be
/// counted by its cause.
#[derive(Debug)]
struct Stopped {
    cause: crate::tenant::FaultCause,
    text: String,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Stopped {}

/// The trap of a call stopped by `KILL`, `SIGNAL 0` or node stop.
fn interrupted() -> wasmtime::Error {
    wasmtime::Error::new(Stopped {
        cause: crate::tenant::FaultCause::Interrupted,
        text: "interrupted (killed, signalled or the node is stopping)".into(),
    })
}

/// The trap of a call that ran out of CPU.
pub(crate) fn cpu_limit_error(
    cpu_ms: u64,
    tenant: &str,
    exhausted: Exhausted,
    ran_ms: u64,
) -> wasmtime::Error {
    let which = match exhausted {
        Exhausted::Own => format!("the CPU limit of {cpu_ms} ms per message of tenant `{tenant}`"),
        Exhausted::Outer => {
            "the CPU limit left to the call it runs inside (a launch within a message)".into()
        }
    };
    wasmtime::Error::new(Stopped {
        cause: crate::tenant::FaultCause::Cpu,
        text: format!("ran past {which} (maybe in an endless loop; stopped after {ran_ms} ms)"),
    })
}

/// The CPU limit of one call into the guests of `tenant`.
pub(crate) fn cpu_limit(tenant: &crate::tenant::Tenant) -> std::time::Duration {
    std::time::Duration::from_millis(tenant.spec.limits.cpu_ms)
}

/// A running wasm service.
pub struct WasmService {
    store: Store<WasmState>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    dispatch: TypedFunc<(u32, i32, u32, u32, u32), ()>,
    signal: Option<TypedFunc<i32, ()>>,
    /// `skywasm_snapshot`, when exported.
    snapshot: Option<TypedFunc<(), i32>>,
    /// The CPU limit of one call into it (its tenant's).
    cpu_limit: std::time::Duration,
}

/// How a wasm service started.
pub struct Started {
    /// The running service.
    pub service: WasmService,
    /// True when its `skywasm_restore` took the state it was given.
    pub restored: bool,
}

impl WasmService {
    /// Instantiates `module` for the service of `core` and runs its init with `args`.
    ///
    /// # Errors
    /// [`LaunchError::Limit`] when the instance pool is full, [`LaunchError::Init`] when
    /// instantiation, `_initialize` or `skywasm_init` trap, or init returns non-zero.
    pub fn start(
        module: &WasmModule,
        core: ServiceCore,
        args: &str,
    ) -> Result<WasmService, LaunchError> {
        Self::start_with(module, core, args, None).map(|started| started.service)
    }

    /// [`WasmService::start`] for the new code of an upgrade: `state`, when given and the
    /// module exports `skywasm_restore`, is handed to it before `skywasm_init`.
    ///
    /// # Errors
    /// As [`WasmService::start`]; also when `skywasm_restore` traps or refuses the state.
    pub fn start_with(
        module: &WasmModule,
        core: ServiceCore,
        args: &str,
        state: Option<&SavedState>,
    ) -> Result<Started, LaunchError> {
        let service = core.service().clone();
        let node = std::sync::Arc::downgrade(core.node());
        let tenant = service.tenant().clone();
        let limiter = MemoryLimiter {
            tenant: tenant.clone(),
            node: node.clone(),
            handle: service.handle(),
            charge: crate::tenant::MemoryCharge::with_first_page(tenant.clone()),
            logged: false,
        };
        let data = WasmState {
            core,
            memory: None,
            interrupt: None,
            stdio: Stdio::default(),
            service_dir: None,
            socket_error: None,
            ticks: 0,
            call_epoch: 0,
            snapshot: None,
            limiter,
            tier_slot: None,
        };
        // The whole start (instantiation with its start function, `_initialize`, restore,
        // init) is one call under the CPU limit.
        let _budget = Budget::enter(cpu_limit(&tenant));
        for code in &module.overflow {
            code.prepare_if_crowded();
        }
        let soft = ticks_in(tenant.spec.limits.cpu_soft_ms);
        let mut store = armed_store(module.pre.module().engine(), data, &service, soft);
        let failed = |e: wasmtime::Error| {
            let text = format!("{e:#}");
            // The kernel's cap on memory mappings is the usual cause on a node of many
            // thousands of services.
            let hint = if text.contains("os error 12") {
                "; with many services live, vm.max_map_count may be too low (docs/config.md)"
            } else {
                ""
            };
            LaunchError::Init(format!("instantiation failed: {text}{hint}"))
        };
        let instance = match module.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                // The fast pool is full: the service runs in the first overflow tier with
                // room, if the node may have more services than the pool holds.
                let Some((code, slot)) = module
                    .overflow
                    .iter()
                    .find_map(|code| code.tier.claim().map(|slot| (code, slot)))
                else {
                    return Err(LaunchError::Limit(format!(
                        "no free instance slot ({e}); raise wasm_max_services"
                    )));
                };
                let pre = code.instance_pre()?;
                let mut data = store.into_data();
                data.tier_slot = Some(slot);
                let mut overflowed = armed_store(pre.module().engine(), data, &service, soft);
                let instance = pre.instantiate(&mut overflowed).map_err(failed)?;
                store = overflowed;
                instance
            }
            Err(e) => return Err(failed(e)),
        };
        let init_error =
            |what: &str, e: wasmtime::Error| LaunchError::Init(describe_trap(what, &e));
        let memory = instance
            .get_memory(&mut store, export::MEMORY)
            .ok_or_else(|| LaunchError::Init("no exported memory".into()))?;
        store.data_mut().memory = Some(memory);
        let (base, accessible) = (memory.data_ptr(&store), memory.data_size(&store));
        // SAFETY: the memory's accessible bytes, mapped while the store lives.
        unsafe { module.prefault.populate(base, accessible) };
        fn get<P: WasmParams, R: WasmResults>(
            instance: &Instance,
            store: &mut Store<WasmState>,
            name: &str,
        ) -> Result<TypedFunc<P, R>, LaunchError> {
            instance
                .get_typed_func(&mut *store, name)
                .map_err(|e| LaunchError::Init(format!("export {name}: {e:#}")))
        }
        let alloc: TypedFunc<u32, u32> = get(&instance, &mut store, export::ALLOC)?;
        let init: TypedFunc<(u32, u32), i32> = get(&instance, &mut store, export::INIT)?;
        let dispatch = get(&instance, &mut store, export::DISPATCH)?;
        let signal = if module.has_signal {
            Some(get(&instance, &mut store, SIGNAL_EXPORT)?)
        } else {
            None
        };
        if module.has_interrupt {
            let interrupt = get(&instance, &mut store, export::INTERRUPT)?;
            store.data_mut().interrupt = Some(interrupt);
            service.mark_interruptible();
        }
        if module.has_initialize {
            let initialize: TypedFunc<(), ()> = get(&instance, &mut store, export::INITIALIZE)?;
            store.data_mut().ticks = 0;
            let (result, _) = service.run_call(|| initialize.call(&mut store, ()));
            result.map_err(|e| init_error(export::INITIALIZE, e))?;
        }
        let snapshot = if module.has_snapshot {
            Some(get(&instance, &mut store, export::SNAPSHOT)?)
        } else {
            None
        };
        let restore: Option<TypedFunc<(u32, u32, u32), i32>> = match state {
            Some(_) if module.has_restore => Some(get(&instance, &mut store, export::RESTORE)?),
            _ => None,
        };
        let owner = service;
        let mut service = WasmService {
            store,
            memory,
            alloc,
            dispatch,
            signal,
            snapshot,
            cpu_limit: cpu_limit(&tenant),
        };
        let restored = match (restore, state) {
            (Some(restore), Some(state)) => {
                let (result, _) = owner.run_call(|| {
                    let (ptr, len) = service.place(&state.bytes)?;
                    service.arm();
                    restore
                        .call(&mut service.store, (state.version, ptr, len))
                        .map_err(|e| trap(export::RESTORE, &e))
                });
                match result.map_err(|fault| LaunchError::Init(fault.to_string()))? {
                    0 => true,
                    code => {
                        return Err(LaunchError::Init(format!(
                            "{} refused the state (version {}, {} bytes): it returned {code}",
                            export::RESTORE,
                            state.version,
                            state.bytes.len()
                        )))
                    }
                }
            }
            _ => false,
        };
        let (result, _) = owner.run_call(|| {
            let (ptr, len) = service.place(args.as_bytes())?;
            service.arm();
            init.call(&mut service.store, (ptr, len))
                .map_err(|e| trap(export::INIT, &e))
        });
        let code = result.map_err(|fault| LaunchError::Init(fault.to_string()))?;
        if code != 0 {
            return Err(LaunchError::Init(format!(
                "{} returned {code}",
                export::INIT
            )));
        }
        if state.is_none() {
            // Init may have grown the memory: the size is taken again.
            let memory = service.memory;
            module.prefault.learn(
                memory.data_ptr(&service.store),
                memory.data_size(&service.store),
            );
        }
        Ok(Started { service, restored })
    }

    /// Starts the epoch count of a new call into the guest (the soft CPU stage, and how
    /// long the call ran for the CPU-limit log line).
    fn arm(&mut self) {
        let state = self.store.data_mut();
        state.ticks = 0;
        state.call_epoch = state.core.node().monitor.epochs();
        self.store.set_epoch_deadline(1);
    }

    /// Starts a call into the guest: armed, and under the tenant's CPU limit while the
    /// returned budget lives.
    fn enter(&mut self) -> Budget {
        self.arm();
        Budget::enter(self.cpu_limit)
    }

    /// Copies bytes into guest memory obtained from `skywasm_alloc`; empty input is (0, 0).
    fn place(&mut self, bytes: &[u8]) -> Result<(u32, u32), Fault> {
        if bytes.is_empty() {
            return Ok((0, 0));
        }
        let len =
            u32::try_from(bytes.len()).map_err(|_| Fault::Abi("message over 4 GiB".into()))?;
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(|e| trap(export::ALLOC, &e))?;
        let memory = self.memory.data_mut(&mut self.store);
        let start = ptr as usize;
        let end = start + bytes.len();
        if ptr == 0 || end > memory.len() {
            return Err(Fault::Abi(format!(
                "{} returned {ptr:#x} for {len} bytes, outside the guest's {} bytes of memory",
                export::ALLOC,
                memory.len()
            )));
        }
        memory[start..end].copy_from_slice(bytes);
        Ok((ptr, len))
    }
}

impl Behavior for WasmService {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.store.data_mut().core
    }

    fn dispatch(&mut self, message: Message) -> Result<(), Fault> {
        let _budget = self.enter();
        let (ptr, len) = self.place(&message.data)?;
        let args = (
            message.ptype as u32,
            message.session,
            message.source.0,
            ptr,
            len,
        );
        self.dispatch
            .call(&mut self.store, args)
            .map_err(|e| trap(export::DISPATCH, &e))
    }

    fn signal(&mut self, signal: i32) -> Result<(), Fault> {
        let Some(func) = self.signal.clone() else {
            return Ok(());
        };
        let _budget = self.enter();
        func.call(&mut self.store, signal)
            .map_err(|e| trap(SIGNAL_EXPORT, &e))
    }

    fn memory_size(&mut self) -> Option<usize> {
        Some(self.memory.data_size(&self.store))
    }

    fn snapshot(&mut self) -> Result<Snapshot, Fault> {
        let Some(func) = self.snapshot.clone() else {
            return Ok(Snapshot::Unsupported);
        };
        let _budget = self.enter();
        self.store.data_mut().snapshot = Some(None);
        let result = func.call(&mut self.store, ());
        let handed = self.store.data_mut().snapshot.take().flatten();
        match result.map_err(|e| trap(export::SNAPSHOT, &e))? {
            0 => Ok(handed.map_or(Snapshot::Empty, Snapshot::State)),
            code => Ok(Snapshot::Refused(code)),
        }
    }
}

impl Drop for WasmService {
    fn drop(&mut self) {
        let state = self.store.data_mut();
        let rest = state.stdio.take_rest();
        if !rest.is_empty() {
            state.output_line(&rest);
        }
    }
}

/// One line describing why a guest call failed: the trap or host error, and the innermost
/// guest function when a backtrace is available.
pub(crate) fn describe_trap(export: &str, error: &wasmtime::Error) -> String {
    trap(export, error).to_string()
}

/// The [`Fault`] of a guest export that stopped with `error`.
pub(crate) fn trap(export: &str, error: &wasmtime::Error) -> Fault {
    let kind = if let Some(stopped) = error.downcast_ref::<Stopped>() {
        stopped.cause
    } else if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::StackOverflow) {
        crate::tenant::FaultCause::Stack
    } else {
        crate::tenant::FaultCause::Trap
    };
    Fault::Trap {
        export: export.to_string(),
        kind,
        cause: error.root_cause().to_string(),
        function: error.downcast_ref::<WasmBacktrace>().and_then(|bt| {
            bt.frames()
                .iter()
                .find_map(|f| f.func_name().map(str::to_string))
        }),
    }
}
