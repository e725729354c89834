//! The node: everything one skywasm process runs (skynet's `skynet_start.c` bring-up).
//!
//! [`Node::start`] brings the node up in skynet's order: the logger, then `bootstrap` (which
//! launches the launcher and the `start` service), then the timer, monitor and worker
//! threads. There is no process-global state: a test can run several nodes in one process.
//! `NodeShared` is what every thread and service of the node shares; how a service is
//! launched, ended and finalized is in [`crate::lifecycle`], where a message goes in
//! `crate::router`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use skywasm_abi::{ptype, Handle};

use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::lifecycle::LaunchError;
use crate::log::Shown;
use crate::module::ModuleRegistry;
use crate::monitor::Monitor;
use crate::mq::{Message, Refused};
use crate::router::{Refusal, Router};
use crate::scheduler::Scheduler;
use crate::service::{Behavior, Fault, Service};
use crate::socket::{EventSink, SocketServer};
use crate::sync::lock;
use crate::tenant::{Tenant, Tenants};

use crate::log::worth_logging;
use crate::module::split_command;
pub use crate::scheduler::WORKER_STACK;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The wasm engine or module registry could not be set up.
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    /// The log service failed to launch.
    #[error("cannot launch the log service `{0}`: {1}")]
    Logger(String, LaunchError),
    /// The bootstrap service failed to launch (skynet: "Bootstrap error").
    #[error("bootstrap error: cannot launch `{0}`: {1}")]
    Bootstrap(String, LaunchError),
    /// A thread could not be spawned.
    #[error("cannot spawn a thread: {0}")]
    Thread(std::io::Error),
}

/// State shared by every thread and service of one node.
pub(crate) struct NodeShared {
    /// The configuration the node started with.
    pub config: NodeConfig,
    /// Runtime env (`GETENV`/`SETENV`), seeded from the config.
    env: Mutex<BTreeMap<String, String>>,
    /// Services by address and name, and the way messages reach them.
    pub router: Router,
    /// Global queue and worker sleep/wake.
    pub scheduler: Arc<Scheduler>,
    /// Time and the timer wheel.
    pub clock: Clock,
    /// Native and wasm modules.
    pub modules: ModuleRegistry,
    /// Endless-loop detection and the wasm epoch.
    pub monitor: Monitor,
    /// The service told about every exit (`MONITOR`), or 0.
    monitor_exit: AtomicU32,
    /// The log service's handle, once it runs.
    logger: AtomicU32,
    /// Log lines dropped because the logger's backlog was full (`log_backlog`); the
    /// logger reports and clears the count.
    pub(crate) log_dropped: AtomicU64,
    /// Set by `ABORT`, SIGINT/SIGTERM or [`Node::stop`].
    quit: AtomicBool,
    quit_lock: Mutex<()>,
    quit_signal: Condvar,
    /// Why the node stopped on a fatal host error ([`NodeShared::fail`]), if it did.
    failure: Mutex<Option<String>>,
    /// The socket server; its events reach owners as PTYPE_SOCKET messages.
    pub sockets: SocketServer,
    /// The tenants; services of the node itself belong to the first.
    pub tenants: Tenants,
    /// The cluster gateway (idle until `clusterd` uses it).
    pub cluster: Arc<crate::cluster::Cluster>,
}

impl NodeShared {
    /// The node's shared state with nothing running yet: no thread, no service. `Node::start`
    /// starts the rest; unit tests use it as it is, so messages wait in mailboxes until
    /// the test looks.
    ///
    /// # Errors
    /// [`StartError::Engine`] when the wasm engine cannot be set up.
    pub(crate) fn new(config: NodeConfig) -> Result<Arc<NodeShared>, StartError> {
        let modules =
            ModuleRegistry::new(&config).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let scheduler = Arc::new(Scheduler::new(config.thread, &worker_caps(&config)));
        Ok(Arc::new_cyclic(|node: &std::sync::Weak<NodeShared>| {
            NodeShared {
                env: Mutex::new(config.env.clone()),
                router: Router::new(config.harbor, scheduler.clone()),
                scheduler,
                clock: Clock::new(),
                monitor: Monitor::new(config.thread + 1),
                modules,
                monitor_exit: AtomicU32::new(0),
                logger: AtomicU32::new(0),
                log_dropped: AtomicU64::new(0),
                quit: AtomicBool::new(false),
                quit_lock: Mutex::new(()),
                quit_signal: Condvar::new(),
                failure: Mutex::new(None),
                sockets: SocketServer::new(
                    socket_sink(node.clone()),
                    socket_notices(node.clone()),
                    config.socket_max_unsent,
                ),
                tenants: crate::tenant::tenants_from_specs(config.tenants.clone()),
                cluster: Arc::new(crate::cluster::Cluster::new(
                    node.clone(),
                    crate::cluster::ClusterConfig::from_env(&config.env, config.max_message_size),
                )),
                config,
            }
        }))
    }

    /// The `clusterd` service, while it runs.
    pub fn cluster_service(&self) -> Option<Handle> {
        self.cluster.service()
    }

    /// Queues a message a service sends, under its tenant's rules ([`Router::push_from`]);
    /// a refusal is counted and logged (thinned out) here.
    ///
    /// # Errors
    /// The [`Refusal`] (its [`Refusal::code`] is what a guest sees).
    pub(crate) fn push_from(
        &self,
        sender: &Service,
        answer: bool,
        dest: Handle,
        message: Message,
        cache: &mut Option<Arc<Service>>,
    ) -> Result<(), Refusal> {
        let (ptype, bytes) = (message.ptype, message.data.len());
        self.router
            .push_from(sender, answer, dest, message, cache)
            .inspect_err(|refusal| self.log_refusal(sender, dest, ptype, bytes, refusal))
    }

    /// Counts a refused send and logs it (the 1st, 2nd, 4th, 8th, ... of each kind).
    fn log_refusal(
        &self,
        sender: &Service,
        dest: Handle,
        ptype: u8,
        bytes: usize,
        refusal: &Refusal,
    ) {
        match refusal {
            Refusal::NoService => {}
            Refusal::Denied(service) => {
                let refused = sender.stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if worth_logging(refused) {
                    self.log(
                        sender.handle(),
                        &format!(
                            "DENIED send (type {ptype}) to {dest} of tenant `{}`: not one of the \
                             names it exports (tenant `{}` is untrusted; {refused} refused so far)",
                            service.tenant().name(),
                            sender.tenant().name()
                        ),
                    );
                }
            }
            Refusal::Full(service) => {
                let rejected = service.stats.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                if worth_logging(rejected) {
                    let tenant = service.tenant();
                    let limits = &tenant.spec.limits;
                    self.log(
                        service.handle(),
                        &format!(
                            "mailbox full ({} messages or {} bytes{}): a message of {bytes} bytes \
                             from {} was refused ({rejected} refused so far)",
                            limits.mailbox,
                            limits.mailbox_bytes,
                            tenant_mailboxes(tenant),
                            sender.handle()
                        ),
                    );
                }
            }
        }
    }

    /// Sends a line of the host's to the log service with `source` as its origin (skynet's
    /// `skynet_error`), cut after [`crate::log::HOST_LINE_LIMIT`] bytes; guest-chosen text
    /// in it is shown with [`crate::log::Shown`]. Past the logger's backlog the line is
    /// dropped and counted. Before the logger runs (or after it died) it goes to stderr.
    pub fn log(&self, source: Handle, text: &str) {
        self.log_line(source, &crate::log::cut(text, crate::log::HOST_LINE_LIMIT));
    }

    /// Sends a line a guest wrote to the log service, as [`NodeShared::log`] but not cut
    /// further (the `log` import bounds it).
    pub(crate) fn log_line(&self, source: Handle, text: &str) {
        let mut logger = Handle(self.logger.load(Ordering::Acquire));
        if logger.is_none() {
            // The log service names itself `.logger` in its init; until Node::start caches its
            // handle, find it by name so its own LAUNCH line is not lost.
            logger = self.router.find_name(".logger").unwrap_or(Handle::NONE);
        }
        let message = Message {
            source,
            session: 0,
            ptype: ptype::TEXT as u8,
            data: text.as_bytes().into(),
        };
        // The backlog is bounded: a flood of lines (a guest's, or refusals it provokes)
        // costs dropped lines, counted and reported by the logger, never host memory.
        match self
            .router
            .push_within(logger, message, self.config.log_backlog)
        {
            Ok(()) => {}
            Err(Refused::Full(_)) => {
                self.log_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(Refused::Closed(_)) => eprintln!("[{source}] {text}"),
        }
    }

    /// Reads an env entry.
    pub fn getenv(&self, key: &str) -> Option<String> {
        lock(&self.env).get(key).cloned()
    }

    /// Sets a new env entry. Returns false when the key exists (skynet allows a key once).
    pub fn setenv(&self, key: &str, value: &str) -> bool {
        let mut env = lock(&self.env);
        if env.contains_key(key) {
            return false;
        }
        env.insert(key.to_string(), value.to_string());
        true
    }

    /// The exit monitor service (`MONITOR`), if any.
    pub fn exit_monitor(&self) -> Option<Handle> {
        match self.monitor_exit.load(Ordering::Acquire) {
            0 => None,
            h => Some(Handle(h)),
        }
    }

    /// Sets the exit monitor service.
    pub fn set_exit_monitor(&self, handle: Handle) {
        self.monitor_exit.store(handle.0, Ordering::Release);
    }

    /// True once the node is shutting down.
    pub fn is_quitting(&self) -> bool {
        self.quit.load(Ordering::Acquire)
    }

    /// Asks the node to stop (`ABORT`, signals): workers finish their current message.
    pub fn request_stop(&self) {
        let _guard = lock(&self.quit_lock);
        self.quit.store(true, Ordering::Release);
        self.quit_signal.notify_all();
        self.scheduler.stop();
        self.modules.stop();
        // Running guest code checks at the next epoch: make it come now.
        self.modules.engine().increment_epoch();
        // A service stuck in a long message would keep its worker (and the shutdown) waiting.
        for (_, service) in self.router.list() {
            service.interrupt_current();
        }
    }

    /// Stops the node because of a host error after which running on is not safe (a panic
    /// that left shared state half-changed, a thread of the node lost): logged, then a stop
    /// as by `ABORT`; [`Node::stop`] reports it, and the binary exits with status 1.
    pub(crate) fn fail(&self, why: &str) {
        self.log(Handle::NONE, &format!("FATAL: {why}; stopping the node"));
        lock(&self.failure).get_or_insert_with(|| why.to_string());
        self.request_stop();
    }

    /// Reloads the cluster's node table from the config's `cluster` file (SIGHUP), when the
    /// cluster is in use; the outcome is logged.
    pub fn reload_cluster(&self) {
        if self.cluster_service().is_none() || self.cluster.config().file.is_none() {
            return;
        }
        let line = match self.cluster.reload(None) {
            Ok(()) => "cluster: the node table was reloaded".to_string(),
            Err(why) => format!("cluster: the node table was not reloaded: {why}"),
        };
        self.log(Handle::NONE, &line);
    }

    /// Asks the log service to reopen its file (SIGHUP).
    pub fn reopen_log(&self) {
        let logger = Handle(self.logger.load(Ordering::Acquire));
        let _ = self
            .router
            .push(logger, Message::empty(Handle::NONE, ptype::SYSTEM as u8, 0));
    }
}

impl crate::scheduler::Host for Arc<NodeShared> {
    fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    fn network_assist(&self) -> bool {
        self.config.network_assist
    }

    fn profile(&self) -> bool {
        self.config.profile
    }

    fn enter(&self, worker: usize, source: Handle, dest: Handle) {
        self.monitor.enter(worker, source, dest);
    }

    fn leave(&self, worker: usize) {
        self.monitor.leave(worker);
    }

    fn log(&self, source: Handle, text: &str) {
        NodeShared::log(self, source, text);
    }

    fn fault(&self, service: &Service, fault: &Fault, what: &str) {
        NodeShared::fault(self, service, fault, what);
    }

    fn finalize(&self, service: &Arc<Service>) {
        NodeShared::finalize(self, service);
    }

    fn fail(&self, why: &str) {
        NodeShared::fail(self, why);
    }

    fn start_deferred(&self, service: &Arc<Service>) {
        self.run_deferred_start(service);
    }

    fn upgrade(&self, service: &Arc<Service>) {
        self.run_upgrade(service);
    }

    #[inline]
    fn admit(&self, behavior: &mut dyn Behavior, message: &Message, started: Option<u64>) -> bool {
        let core = behavior.core();
        core.message_started_ns = started;
        // A reply or timeout for the code an upgrade replaced has nobody waiting for it.
        core.note_delivery(message)
    }

    fn record_message(&self, service: &Service, message: &Message) {
        crate::log::record_message(self, service, message);
    }

    fn around_dispatch<R>(&self, dispatch: impl FnOnce() -> R) -> R {
        crate::cluster::batch_writes(dispatch)
    }
}

mod handle;
pub use handle::{ClusterError, NodeHandle, ServiceInfo, TenantUsage};
#[cfg(test)]
pub(crate) mod testing;

/// A running node.
pub struct Node {
    shared: Arc<NodeShared>,
    workers: Vec<JoinHandle<()>>,
    /// The timer and monitor threads; they stop after the workers (the monitor's epoch ticks
    /// are what interrupt a worker stuck in guest code).
    background: Vec<JoinHandle<()>>,
}

impl Node {
    /// Brings a node up: engine, logger, bootstrap, then the threads.
    ///
    /// # Errors
    /// A [`StartError`] when the engine, the logger or bootstrap cannot start.
    pub fn start(config: NodeConfig) -> Result<Node, StartError> {
        let shared = NodeShared::new(config)?;
        let mut node = Node {
            shared: shared.clone(),
            workers: Vec::new(),
            background: Vec::new(),
        };
        let logservice = shared.config.logservice.clone();
        let logger_arg = shared.config.logger.clone().unwrap_or_default();
        let logger = shared
            .launch(&logservice, &logger_arg)
            .map_err(|e| StartError::Logger(logservice.clone(), e))?;
        shared.logger.store(logger.0, Ordering::Release);
        if let Some(daemon) = &shared.config.daemon {
            shared.log(
                Handle::NONE,
                &format!("daemon = {daemon:?} is not supported: running in the foreground"),
            );
        }
        node.spawn_threads()?;
        let bootstrap = shared.config.bootstrap.clone();
        let (module, args) = split_command(&bootstrap);
        // Bootstrap's init may launch services whose inits launch more: give it a thread
        // with a worker's stack rather than the caller's.
        let launched = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("skywasm-bootstrap".into())
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, || shared.launch(module, args))
                .map_err(StartError::Thread)?
                .join()
                .map_err(|payload| {
                    StartError::Bootstrap(
                        bootstrap.clone(),
                        LaunchError::Init(format!(
                            "host panic: {}",
                            crate::sync::panic_text(&*payload)
                        )),
                    )
                })
        });
        if let Err(e) = launched
            .and_then(|result| result.map_err(|e| StartError::Bootstrap(bootstrap.clone(), e)))
        {
            let _ = node.stop();
            return Err(e);
        }
        // A tenant's start services run their inits on workers, under the tenant's cap; one
        // that fails is the tenant's problem: logged, the node runs on.
        for tenant in shared.tenants.iter().skip(1) {
            for command in &tenant.spec.start {
                let (module, args) = split_command(command);
                let _ = shared.launch_deferred(tenant, module, args);
            }
        }
        Ok(node)
    }

    fn spawn_threads(&mut self) -> Result<(), StartError> {
        let spawn = |name: String, stack: usize, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .stack_size(stack)
                .spawn(f)
                .map_err(StartError::Thread)
        };
        // Without the timer or the monitor no timeout fires and no guest code is ever
        // interrupted: a panic in either stops the node, saying so.
        let shared = &self.shared;
        self.background.push(spawn(
            "skywasm-timer".into(),
            1 << 20,
            vital(shared, "the timer thread".into(), run_timer_thread),
        )?);
        self.background.push(spawn(
            "skywasm-monitor".into(),
            1 << 20,
            vital(shared, "the monitor thread".into(), run_monitor_thread),
        )?);
        for index in 0..self.shared.config.thread {
            // A panic while serving a service ends that service (the scheduler catches it);
            // one that escapes the scheduler itself loses the worker: the node stops.
            let what = format!("worker {index}, outside any service,");
            let body = vital(shared, what, move |shared: &Arc<NodeShared>| {
                crate::scheduler::run_worker(shared, index)
            });
            self.workers.push(spawn(
                format!("skywasm-worker-{index}"),
                WORKER_STACK,
                body,
            )?);
        }
        Ok(())
    }

    /// A handle to launch, look up and control services of this node from outside.
    pub fn handle(&self) -> NodeHandle {
        NodeHandle::new(self.shared.clone())
    }

    /// Blocks until the node is asked to stop (`ABORT`, a signal, [`NodeHandle::request_stop`]).
    pub fn wait(&self) {
        let mut guard = crate::sync::lock_plain(&self.shared.quit_lock);
        while !self.shared.is_quitting() {
            guard = self
                .shared
                .quit_signal
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Like [`Node::wait`] with a time limit; returns true if the node was asked to stop.
    pub fn wait_timeout(&self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let mut guard = crate::sync::lock_plain(&self.shared.quit_lock);
        while !self.shared.is_quitting() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .shared
                .quit_signal
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Stops the node: workers finish their current message (guest code is interrupted
    /// within one epoch period), the threads are joined, the log service writes what it
    /// still has queued, and every service is dropped. A worker still busy after
    /// [`STOP_GRACE`] (stuck in host code nothing can interrupt) is abandoned, with a log
    /// line naming the service it runs, so the stop always ends.
    pub fn stop(&mut self) -> StopReport {
        let shared = self.shared.clone();
        shared.request_stop();
        let deadline = std::time::Instant::now() + STOP_GRACE;
        crate::sync::wait_until(Some(deadline), || {
            self.workers.iter().all(JoinHandle::is_finished)
        });
        let mut abandoned = Vec::new();
        for (index, thread) in self.workers.drain(..).enumerate() {
            if thread.is_finished() {
                let _ = thread.join();
                continue;
            }
            let running = shared
                .monitor
                .running(index)
                .and_then(|handle| shared.router.service(handle))
                .map_or_else(
                    || "host code".to_string(),
                    |service| {
                        format!(
                            "{} `{} {}` of tenant `{}`",
                            service.handle(),
                            Shown(&service.module()),
                            Shown(&service.args()),
                            service.tenant().name()
                        )
                    },
                );
            shared.log(
                Handle::NONE,
                &format!(
                    "node stop: worker {index} did not stop within {} s ({running}); abandoned",
                    STOP_GRACE.as_secs()
                ),
            );
            abandoned.push(running);
        }
        shared.monitor.stop();
        for thread in self.background.drain(..) {
            let _ = thread.join();
        }
        if !shared.sockets.stop_within(Some(STOP_GRACE)) {
            shared.log(
                Handle::NONE,
                &format!(
                    "node stop: the network thread did not stop within {} s; abandoned",
                    STOP_GRACE.as_secs()
                ),
            );
            abandoned.push("the network thread".to_string());
        }
        shared.scheduler.drain();
        let logger = Handle(shared.logger.load(Ordering::Acquire));
        let services = shared.router.retire_all();
        // Flush the log service's queue first so the last lines are not lost.
        if let Some((_, log_service)) = services.iter().find(|(h, _)| *h == logger) {
            crate::scheduler::drain_queue(log_service);
        }
        for (_, service) in services {
            service.discard();
        }
        let failure = lock(&shared.failure).clone();
        StopReport { failure, abandoned }
    }
}

/// The body of a thread the node cannot do without: `body`, and if a panic escapes it, a
/// stop of the node saying that `what` panicked.
fn vital(
    shared: &Arc<NodeShared>,
    what: String,
    body: impl FnOnce(&Arc<NodeShared>) + Send + 'static,
) -> Box<dyn FnOnce() + Send> {
    let shared = shared.clone();
    Box::new(move || {
        let run = std::panic::AssertUnwindSafe(|| body(&shared));
        if let Err(payload) = std::panic::catch_unwind(run) {
            let why = crate::sync::panic_text(&*payload);
            shared.fail(&format!("{what} panicked: {why}"));
        }
    })
}

/// How long [`Node::stop`] waits for the workers before it abandons those still busy.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How a node stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Why it stopped on a fatal host error, if it did.
    pub failure: Option<String>,
    /// What the workers abandoned at the end of [`STOP_GRACE`] were running.
    pub abandoned: Vec<String>,
}

impl StopReport {
    /// The process exit status for this stop: 0 for a clean stop, 1 after a fatal host
    /// error, 2 when running services had to be abandoned.
    pub fn exit_code(&self) -> u8 {
        if self.failure.is_some() {
            1
        } else if !self.abandoned.is_empty() {
            2
        } else {
            0
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.workers.is_empty() || !self.background.is_empty() {
            let _ = self.stop();
        }
    }
}

/// Socket events become PTYPE_SOCKET messages from address 0 to the socket's owner (skynet's
/// `skynet_socket.c` forward). A socket whose owner is gone, or a stopping node, refuses.
fn socket_sink(node: std::sync::Weak<NodeShared>) -> EventSink {
    use crate::socket::Delivery;
    Box::new(move |owner, body| {
        let Some(node) = node.upgrade() else {
            return Delivery::Gone;
        };
        if node.is_quitting() {
            return Delivery::Gone;
        }
        let message = Message {
            source: Handle::NONE,
            session: 0,
            ptype: ptype::SOCKET as u8,
            data: body.into(),
        };
        // Not refused for a full mailbox: the socket pauses instead (below), so what it
        // read is never lost.
        let Some((service, held)) = node.router.push_measured(owner, message) else {
            return Delivery::Gone;
        };
        if held > service.tenant().spec.limits.socket_backlog {
            Delivery::Backlogged(service)
        } else {
            Delivery::Taken
        }
    })
}

/// What a refusal for a full mailbox says of the tenant's mailboxes together, under a cap.
fn tenant_mailboxes(tenant: &Tenant) -> String {
    let limit = tenant.spec.limits.tenant_mailbox_bytes;
    if limit == usize::MAX {
        return String::new();
    }
    format!(
        "; all of tenant `{}`'s mailboxes hold {} of their {limit} bytes",
        tenant.name(),
        tenant.queued_bytes()
    )
}

/// The scheduler's cap per tenant: its `workers` limit, none when it may use them all.
fn worker_caps(config: &NodeConfig) -> Vec<usize> {
    config
        .tenants
        .iter()
        .map(|tenant| match tenant.limits.workers {
            n if n >= config.thread => crate::mq::UNCAPPED,
            n => n,
        })
        .collect()
}

/// The timer thread: advance time, deliver expired timeouts, make sure no ready work waits
/// for a sleeping worker.
fn run_timer_thread(node: &Arc<NodeShared>) {
    while !node.is_quitting() {
        for timeout in node.clock.update() {
            // A timeout of a service that has ended was given back when it ended, and has
            // nobody to wake.
            let Some(service) = timeout.owner.upgrade() else {
                continue;
            };
            if !service.timer_fired() {
                continue;
            }
            if let Some(tenant) = node.tenants.by_index(timeout.tenant) {
                tenant.release_timers(1);
            }
            let _ = node.router.push_cached(
                timeout.handle,
                Message::empty(Handle::NONE, ptype::RESPONSE as u8, timeout.session),
                &mut Some(service),
            );
        }
        node.clock.sweep_if_due();
        node.scheduler.tick();
        std::thread::sleep(crate::clock::TIMER_PERIOD);
    }
}

/// The monitor thread: epoch ticks for the wasm engine, and the endless-loop check (the
/// service is marked, the log says so).
fn run_monitor_thread(node: &Arc<NodeShared>) {
    node.monitor.run(
        || node.modules.engine().increment_epoch(),
        |source, destination, version| {
            if let Some(service) = node.router.service(destination) {
                service.stats.endless.store(true, Ordering::Relaxed);
            }
            node.log(
                Handle::NONE,
                &format!(
                    "A message from [ {source} ] to [ {destination} ] maybe in an endless loop (version = {version})"
                ),
            );
        },
    );
}

/// The socket server's own notices go to the log.
fn socket_notices(node: std::sync::Weak<NodeShared>) -> crate::socket::NoticeSink {
    Box::new(move |text| {
        if let Some(node) = node.upgrade() {
            node.log(Handle::NONE, &format!("socket-server: {text}"));
        }
    })
}
