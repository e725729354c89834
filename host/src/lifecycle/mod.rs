//! A service's life (the context lifecycle of skynet's `skynet_server.c`): launch, init,
//! the end (`EXIT`, `KILL`, a fault), signals, upgrades and the finalize.
//!
//! `NodeShared::launch` registers a handle, creates the instance and runs its init while
//! the service's queue is held, then releases the queue; `NodeShared::launch_deferred`
//! leaves the init to a worker instead. A service ends by `EXIT`, `KILL`, a fault or
//! `ABORT`; it is then *finalized* exactly once by whoever holds its queue: its instance is
//! dropped, its handle and names retired, the messages still queued and the requests it
//! received but never answered are each answered with PTYPE_ERROR, and the exit monitor and
//! the launcher are told.
//!
//! Whatever another thread wants done to a service's instance — its deferred init, a
//! signal, an upgrade, its finalize — is asked of the worker holding its queue through the
//! service's work word (`lifecycle/work.rs`), never done on the asking thread: a service's
//! code runs on one thread at a time, and never nested inside another service's.

pub mod upgrade;
pub(crate) mod work;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use skywasm_abi::{ptype, Handle, HostError};
use skywasm_pack::Value;

use crate::log::Shown;
use crate::module::ModuleKind;
use crate::mq::Message;
use crate::service::{expects_answer, Behavior, Fault, Service, ServiceCore};
use crate::shared::NodeShared;
use crate::tenant::Tenant;
use crate::wasm::WasmService;
use work::Bits;

/// Nested launches allowed on one thread (a service launching in its init another service
/// that launches in its init...): each level nests wasm calls on the worker's native stack.
const MAX_LAUNCH_DEPTH: usize = 16;

thread_local! {
    static LAUNCH_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Why a service could not be launched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LaunchError {
    /// No built-in or wasm module of that name was found on `wasm_path`.
    #[error("module `{0}` not found (searched built-ins and wasm_path `{1}`)")]
    NotFound(String, String),
    /// The module file exists but cannot be compiled or linked.
    #[error("module `{0}` is invalid: {1}")]
    Invalid(String, String),
    /// The service's init failed (trap, non-zero return, or exit during init).
    #[error("init failed: {0}")]
    Init(String),
    /// No handle or instance slot is free.
    #[error("{0}")]
    Limit(String),
    /// Launches nested too deeply on one thread.
    #[error("launch nested more than {MAX_LAUNCH_DEPTH} deep")]
    TooDeep,
    /// The launching tenant may not launch this module.
    #[error("{0}")]
    Denied(String),
}

impl LaunchError {
    /// The host error a guest sees for this failure.
    pub fn error(&self) -> HostError {
        match self {
            LaunchError::Limit(_) => HostError::Limit,
            LaunchError::Denied(_) => HostError::Denied,
            _ => HostError::Failed,
        }
    }
}

impl NodeShared {
    /// Launches a service: `module` with its argument string. Its init runs on the calling
    /// thread before this returns; an init that launches in turn nests on that thread's
    /// native stack, up to [`crate::scheduler::WORKER_STACK`] for the deepest nesting allowed: embedders call
    /// this from a thread with that much stack (the node's own threads have it).
    ///
    /// # Errors
    /// A [`LaunchError`]; the failure is also logged as skynet does (`FAILED launch ...`).
    pub fn launch(self: &Arc<Self>, module: &str, args: &str) -> Result<Handle, LaunchError> {
        let tenant = self.tenants.node().clone();
        self.launch_in(&tenant, module, args)
    }

    /// Launches a service into `tenant` (which counts it against its service limit).
    ///
    /// # Errors
    /// As [`NodeShared::launch`].
    pub fn launch_in(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        module: &str,
        args: &str,
    ) -> Result<Handle, LaunchError> {
        let kind = self.resolve_module(tenant, module, args)?;
        self.launch_with_tenant(tenant, module, args, |core| instantiate(kind, core, args))
    }

    /// Launches a service into `tenant` whose init runs later, on a worker and under the
    /// tenant's worker cap, instead of on the calling worker (`LAUNCHAS` into a capped
    /// tenant: `.launcher` never runs an untrusted tenant's code). The handle comes back at
    /// once; messages to the service wait until its init has run. A failed init ends the
    /// service, and `.launcher` learns it from `REMOVE` with kill = true.
    ///
    /// # Errors
    /// As [`NodeShared::launch`], for what fails before the init.
    pub fn launch_deferred(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        module: &str,
        args: &str,
    ) -> Result<Handle, LaunchError> {
        // A module not loaded yet is compiled (and pre-initialized) by the init, on the
        // tenant's worker: the launching service does not wait for the tenant's compile.
        // Resolving now is cheap for a loaded module, and says (and logs) why a missing one
        // is missing.
        let ready = if self.modules.is_ready(module) || !self.modules.exists(module) {
            Some(self.resolve_module(tenant, module, args)?)
        } else {
            None
        };
        let service = self.register_service(tenant, module, args)?;
        let (owned_module, owned_args) = (module.to_string(), args.to_string());
        let node = self.clone();
        let on_behalf = tenant.clone();
        service.set_deferred_start(Box::new(move |core| {
            let kind = match ready {
                Some(kind) => kind,
                None => node
                    .modules
                    .resolve_for(&owned_module, &crate::module::Asker::tenant(&on_behalf))?,
            };
            instantiate(kind, core, &owned_args)
        }));
        let handle = service.handle();
        // The queue is held (in global) since its creation, so asking finds it held; a
        // worker now takes it as it takes any ready queue, under the tenant's cap, and runs
        // the init first.
        let held = !service.ask(Bits::START);
        debug_assert!(held, "a new service's queue is held");
        self.scheduler.ready(service);
        Ok(handle)
    }

    /// Runs the init of a service launched by [`NodeShared::launch_deferred`]; the worker
    /// holding its queue calls it before the first message. A failed init marks the service
    /// dead (the worker then finalizes it).
    pub(crate) fn run_deferred_start(self: &Arc<Self>, service: &Arc<Service>) {
        service.take_work(Bits::START);
        let Some(start) = service.take_deferred_start() else {
            return;
        };
        let (module, args) = (service.module(), service.args());
        let span = tracing::info_span!(
            target: "skywasm::lifecycle",
            "start",
            service = %service.handle(),
            module = %module,
            tenant = service.tenant().name(),
        );
        let _entered = span.enter();
        let core = ServiceCore::new(self.clone(), service.clone());
        let failure = match start(core) {
            Ok(behavior) => match self.install(service, behavior) {
                Ok(()) => return,
                Err(failure) => failure,
            },
            Err(failure) => failure,
        };
        self.log(
            service.handle(),
            &format!(
                "FAILED launch {} {}: {failure}",
                Shown(&module),
                Shown(&args)
            ),
        );
        service.mark_never_started();
        if service.mark_dead() {
            self.router.retire(service.handle());
        }
    }

    /// The module `module` names, loaded within `tenant`'s limits; a failure is logged as
    /// skynet does.
    fn resolve_module(
        &self,
        tenant: &Arc<Tenant>,
        module: &str,
        args: &str,
    ) -> Result<ModuleKind, LaunchError> {
        self.modules
            .resolve_for(module, &crate::module::Asker::tenant(tenant))
            .inspect_err(|failure| {
                self.log(
                    Handle::NONE,
                    &format!("FAILED launch {} {}: {failure}", Shown(module), Shown(args)),
                );
            })
    }

    /// Launches a service whose instance `start` builds from its [`ServiceCore`] (embedders
    /// use it for native services that capture state). `module` and `args` are what lists
    /// and logs show.
    ///
    /// # Errors
    /// As [`NodeShared::launch`].
    pub fn launch_with(
        self: &Arc<Self>,
        module: &str,
        args: &str,
        start: impl FnOnce(ServiceCore) -> Result<Box<dyn Behavior>, LaunchError>,
    ) -> Result<Handle, LaunchError> {
        let tenant = self.tenants.node().clone();
        self.launch_with_tenant(&tenant, module, args, start)
    }

    pub(crate) fn launch_with_tenant(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        module: &str,
        args: &str,
        start: impl FnOnce(ServiceCore) -> Result<Box<dyn Behavior>, LaunchError>,
    ) -> Result<Handle, LaunchError> {
        let depth = LAUNCH_DEPTH.get();
        if depth >= MAX_LAUNCH_DEPTH {
            let failure = LaunchError::TooDeep;
            self.log(
                Handle::NONE,
                &format!("FAILED launch {} {}: {failure}", Shown(module), Shown(args)),
            );
            return Err(failure);
        }
        /// Gives the level back however the launch ends (a host panic unwinds through it).
        struct Level(usize);
        impl Drop for Level {
            fn drop(&mut self) {
                LAUNCH_DEPTH.set(self.0);
            }
        }
        LAUNCH_DEPTH.set(depth + 1);
        let _level = Level(depth);
        let span = tracing::info_span!(
            target: "skywasm::lifecycle",
            "launch",
            module,
            args = %crate::log::cut(args, 200),
            tenant = tenant.name(),
            service = tracing::field::Empty,
        );
        let _entered = span.enter();
        self.launch_inner(tenant, module, args, start)
    }

    fn launch_inner(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        module: &str,
        args: &str,
        start: impl FnOnce(ServiceCore) -> Result<Box<dyn Behavior>, LaunchError>,
    ) -> Result<Handle, LaunchError> {
        let service = self.register_service(tenant, module, args)?;
        let handle = service.handle();
        tracing::Span::current().record("service", tracing::field::display(handle));
        /// Ends the new service if its init unwinds (a host panic), so no half-started
        /// service keeps its handle with a mailbox nobody serves.
        struct Starting<'a>(&'a NodeShared, Option<Arc<Service>>);
        impl Drop for Starting<'_> {
            fn drop(&mut self) {
                if let Some(service) = self.1.take() {
                    service.mark_dead();
                    self.0.finalize(&service);
                }
            }
        }
        let mut starting = Starting(self, Some(service.clone()));
        let core = ServiceCore::new(self.clone(), service.clone());
        let failure = match start(core) {
            Ok(behavior) => match self.install(&service, behavior) {
                Ok(()) => {
                    starting.1 = None;
                    tracing::info!(
                        target: "skywasm::lifecycle",
                        service = %handle,
                        module,
                        tenant = tenant.name(),
                        "launched"
                    );
                    if service.queue.release_hold() {
                        self.scheduler.ready(service);
                    }
                    return Ok(handle);
                }
                Err(failure) => failure,
            },
            Err(error) => error,
        };
        self.log(
            handle,
            &format!("FAILED launch {} {}: {failure}", Shown(module), Shown(args)),
        );
        Err(failure)
    }

    /// Counts a new service against its tenant and gives it a handle; its queue is held
    /// until its init has run.
    fn register_service(
        &self,
        tenant: &Arc<Tenant>,
        module: &str,
        args: &str,
    ) -> Result<Arc<Service>, LaunchError> {
        let failed = |failure: LaunchError| {
            self.log(
                Handle::NONE,
                &format!("FAILED launch {} {}: {failure}", Shown(module), Shown(args)),
            );
            failure
        };
        if !tenant.add_service() {
            tenant
                .activity
                .refusals
                .add(crate::tenant::RefusalKind::Launch);
            return Err(failed(LaunchError::Limit(format!(
                "tenant `{}` already runs its limit of {} services",
                tenant.name(),
                tenant.spec.limits.services
            ))));
        }
        let registered = self
            .router
            .register(|h| Arc::new(Service::new(h, module, args, tenant.clone())));
        match registered {
            Ok((_, service)) => Ok(service),
            Err(e) => {
                tenant.remove_service();
                Err(failed(LaunchError::Limit(e.to_string())))
            }
        }
    }

    /// Puts a started instance into its service and logs the launch; an error when the
    /// service exited during its init.
    fn install(
        &self,
        service: &Service,
        mut behavior: Box<dyn Behavior>,
    ) -> Result<(), LaunchError> {
        if let Some(bytes) = behavior.memory_size() {
            service.stats.memory.store(bytes as u64, Ordering::Relaxed);
        }
        *service.instance() = Some(behavior);
        if !service.is_alive() {
            return Err(LaunchError::Init(
                "the service exited during its init".into(),
            ));
        }
        self.log(
            service.handle(),
            &format!(
                "LAUNCH {} {}",
                Shown(&service.module()),
                Shown(&service.args())
            ),
        );
        Ok(())
    }

    /// Ends a service from outside (`KILL`): a message it is running is interrupted at the
    /// next epoch check; its handle and names are released at once. Returns false if it was
    /// not alive.
    pub fn kill(&self, handle: Handle) -> bool {
        self.end(handle, true)
    }

    /// Ends the calling service (`EXIT`): it finishes its current message first.
    pub fn exit(&self, handle: Handle) -> bool {
        self.end(handle, false)
    }

    fn end(&self, handle: Handle, interrupt: bool) -> bool {
        let Some(service) = self.router.service(handle) else {
            return false;
        };
        if !service.mark_dead() {
            return false;
        }
        if interrupt {
            service.interrupt_current();
        }
        self.router.retire(handle);
        // DEAD is asked of the holder like any work: an idle queue is scheduled so a worker
        // finalizes the service; a held or waiting queue reaches a worker anyway.
        if service.queue.schedule() {
            self.scheduler.ready(service);
        }
        true
    }

    /// Asks for a service's `signal` entry (`SIGNAL :handle sig`). Signal 0 on a service
    /// that is in the middle of a message interrupts that message (which ends a wasm
    /// service); any other signal is stored and delivered by a worker, like a message: after
    /// the running message, or at once if the service is idle. It never runs on the
    /// caller's thread, so signals cannot nest one service's code inside another's.
    pub fn signal(&self, handle: Handle, signal: i32) -> bool {
        let Some(service) = self.router.service(handle) else {
            return false;
        };
        if signal == 0 && service.is_running() {
            // A guest that can stop its own work (snlua raises a Lua error) is told;
            // any other running message is interrupted and the service discarded.
            if service.is_interruptible() {
                service.soft_interrupt_current();
            } else {
                service.interrupt_current();
            }
            return true;
        }
        if service.ask_signal(signal) {
            self.scheduler.ready(service);
        }
        true
    }

    /// Handles a fault raised while `service` ran a message: the service is marked dead (it
    /// may already be, when KILL interrupted it) and the log says why.
    pub(crate) fn fault(&self, service: &Service, fault: &Fault, what: &str) {
        let handle = service.handle();
        service.tenant().activity.faults.add(fault.cause());
        tracing::info!(
            target: "skywasm::lifecycle",
            service = %handle,
            tenant = service.tenant().name(),
            cause = crate::tenant::Kind::label(fault.cause()),
            "fault: {what}: {fault}"
        );
        if service.mark_dead() {
            self.router.retire(handle);
        }
        self.log(
            handle,
            &format!(
                "service `{} {}` (tenant `{}`) {what}: {fault}; the service is discarded",
                Shown(&service.module()),
                Shown(&service.args()),
                service.tenant().name()
            ),
        );
    }

    /// Finalizes a dead service. Only the holder of its queue calls this; later calls do nothing.
    pub(crate) fn finalize(&self, service: &Arc<Service>) {
        // Once is enough: a dead queue may be scheduled again (see `reschedule_if_owed`).
        if !service.mark_finalized() {
            return;
        }
        let handle = service.handle();
        // Its counts move to its tenant, whose totals outlive it.
        let activity = &service.tenant().activity;
        let stats = &service.stats;
        activity
            .ended_received
            .fetch_add(stats.messages.load(Ordering::Relaxed), Ordering::Relaxed);
        activity
            .ended_sent
            .fetch_add(stats.sent.load(Ordering::Relaxed), Ordering::Relaxed);
        // Its timeouts go back to its tenant now (before its handle is free, so whoever saw
        // it end sees them back), not when they would have fired.
        let timers = service.release_timers();
        service.tenant().release_timers(timers);
        self.clock.orphan(timers as usize);
        self.router.retire(handle);
        let behavior = service.instance().take();
        let pending = service.queue.close();
        let owed = behavior
            .map(|mut behavior| behavior.core().take_owed())
            .unwrap_or_default();
        // Its instance is gone now (its memory and slot free): only then does its tenant
        // count one service fewer, so a new one never waits for what the old one held.
        service.tenant().remove_service();
        if !self.sockets.is_empty() {
            self.sockets.close_owned_by(handle);
        }
        self.stm.service_ended(handle);
        self.share.service_ended(handle);
        service.message_log().close();
        if self.is_quitting() {
            return;
        }
        for message in pending {
            if message.session != 0 && expects_answer(message.ptype) {
                self.router
                    .answer_error(message.source, handle, message.session);
            }
        }
        for (requester, session) in owed {
            self.router.answer_error(requester, handle, session);
        }
        if let Some(monitor) = self.exit_monitor() {
            if monitor != handle {
                let _ = self
                    .router
                    .push(monitor, Message::empty(handle, ptype::CLIENT as u8, 0));
            }
        }
        // Tell the launcher (skynet's REMOVE) so its list stays true and a pending
        // `newservice` of this service fails instead of waiting forever.
        if let Some(launcher) = self.router.find_name(".launcher") {
            if launcher != handle {
                // kill = true for a start that failed after the launch answered (a deferred
                // init), so a waiting `newservice` fails instead of returning nil.
                let body = skywasm_pack::pack(&[
                    Value::from("REMOVE"),
                    Value::Integer(handle.0 as i64),
                    Value::Boolean(service.never_started()),
                ]);
                if let Ok(body) = body {
                    let _ = self.router.push(
                        launcher,
                        Message {
                            source: handle,
                            session: 0,
                            ptype: ptype::LUA as u8,
                            data: body.into(),
                        },
                    );
                }
            }
        }
    }
}

/// Builds the instance of a resolved module.
fn instantiate(
    kind: ModuleKind,
    core: ServiceCore,
    args: &str,
) -> Result<Box<dyn Behavior>, LaunchError> {
    match kind {
        ModuleKind::Native(factory) => factory(core, args).map_err(LaunchError::Init),
        ModuleKind::Wasm(module) => {
            WasmService::start(&module, core, args).map(|s| Box::new(s) as Box<dyn Behavior>)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use skywasm_abi::ptype;

    use super::work::Bits;
    use crate::mq::Message;
    use crate::shared::testing::{add_quiet, as_service, drain, idle_node, quiet_in};

    #[test]
    fn a_killed_service_is_finalized_once_and_every_caller_gets_an_error() {
        let node = idle_node("");
        let caller = quiet_in(&node, "node", "caller");
        let target = quiet_in(&node, "node", "target");
        let services = node.tenants.node().services.load(Ordering::Acquire);
        // One request it took and owes, two still in its mailbox, one one-way message.
        let owed = Message::empty(caller, ptype::LUA as u8, 1);
        assert!(as_service(&node, target, |core| core.note_delivery(&owed)));
        for session in [2, 3, 0] {
            let message = Message::empty(caller, ptype::LUA as u8, session);
            node.router.push(target, message).unwrap();
        }
        assert!(as_service(&node, target, |core| crate::command::timeout(core, 100)).is_ok());
        let service = node.router.service(target).unwrap();
        assert!(node.kill(target));
        assert!(!node.kill(target), "killed once");
        assert!(
            node.router.service(target).is_none(),
            "its handle is retired at once"
        );
        assert!(service.pending().has(Bits::DEAD));
        // What the worker that holds its queue next does.
        node.finalize(&service);
        node.finalize(&service);
        let mut errors: Vec<i32> = drain(&node, caller)
            .into_iter()
            .map(|m| {
                assert_eq!((m.source, m.ptype), (target, ptype::ERROR as u8));
                m.session
            })
            .collect();
        errors.sort_unstable();
        assert_eq!(
            errors,
            [1, 2, 3],
            "each request answered once, the one-way not"
        );
        assert_eq!(
            node.tenants.node().services.load(Ordering::Acquire),
            services - 1
        );
        assert!(service.instance().is_none(), "its instance is dropped");
        assert!(
            node.router.push(target, owed).is_err(),
            "its mailbox is closed"
        );
    }

    #[test]
    fn a_deferred_init_runs_on_the_worker_and_a_failed_one_ends_the_service_never_started() {
        let node = idle_node("");
        add_quiet(&node);
        let tenant = node.tenants.node().clone();
        let handle = node.launch_deferred(&tenant, "quiet", "later").unwrap();
        let service = node.router.service(handle).unwrap();
        assert!(service.pending().has(Bits::START));
        assert!(
            service.instance().is_none(),
            "nothing ran on the launching thread"
        );
        node.run_deferred_start(&service);
        assert!(!service.pending().has(Bits::START));
        assert!(service.instance().is_some());

        node.modules
            .add_native("refuses", |_, _| Err("not today".to_string()));
        let handle = node.launch_deferred(&tenant, "refuses", "").unwrap();
        let service = node.router.service(handle).unwrap();
        node.run_deferred_start(&service);
        assert!(!service.is_alive());
        assert!(service.never_started());
        assert!(node.router.service(handle).is_none());
    }
}
