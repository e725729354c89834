//! The state one node's threads and services share (`NodeShared`), and what every part of
//! the node asks of it: logging, the env, the exit monitor, stopping (skynet's
//! `skynet_server.c` and `skynet_env.c` globals, held per node so that a process can run
//! several).
//!
//! This is the hub a service's host calls reach: the router, the scheduler, the clock, the
//! modules, the sockets, the tenants and the cluster gateway hang off it. How a service is
//! launched, ended and finalized is in [`crate::lifecycle`] (an `impl NodeShared` there),
//! where a message goes in [`crate::router`]. Bringing the threads up and down is
//! [`crate::node`]'s, which is why nothing here imports it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use skywasm_abi::{ptype, Handle};

use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::lifecycle::LaunchError;
use crate::log::worth_logging;
use crate::module::ModuleRegistry;
use crate::monitor::Monitor;
use crate::mq::{Message, Refused};
use crate::router::{Refusal, Router};
use crate::scheduler::Scheduler;
use crate::service::{Behavior, Fault, Service};
use crate::socket::{EventSink, SocketServer};
use crate::sync::lock;
use crate::tenant::{RefusalKind, Tenant, Tenants};

#[cfg(test)]
pub(crate) mod testing;

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
    /// The node could not join its harbor network (`master`, `address`, `standalone`).
    #[error("{0}")]
    Harbor(#[from] crate::harbor::HarborError),
    /// The metrics endpoint could not listen at its address (`metrics`).
    #[error("cannot serve metrics at {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
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
    pub clock: Clock<Service>,
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
    /// Set by `ABORT`, SIGINT/SIGTERM or `Node::stop`.
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
    /// This node's side of the harbor network, when the config names a `master`.
    pub harbor: Option<Arc<crate::harbor::Harbor>>,
    /// skynet.stm's objects.
    pub stm: crate::stm::StmStore,
    /// skynet.sharetable's tables.
    pub share: crate::share::ShareStore,
    /// The node's own counters for the metrics, and the monitor's busy samples.
    pub metrics: crate::metrics::Metrics,
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
        let cluster_config =
            crate::cluster::ClusterConfig::from_env(&config.env, config.max_message_size);
        // One busy poll for the network thread, extended by cluster and harbor traffic.
        let busy = Arc::new(crate::socket::busy::BusyPoll::new(cluster_config.busy_poll));
        let shared = Arc::new_cyclic(|node: &std::sync::Weak<NodeShared>| NodeShared {
            env: Mutex::new(config.env.clone()),
            router: Router::new(config.harbor, scheduler.clone()),
            scheduler,
            clock: Clock::new(),
            monitor: Monitor::new(config.thread + 1),
            metrics: crate::metrics::Metrics::new(config.thread),
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
                crate::scheduler::WORKER_STACK,
                busy.clone(),
            ),
            tenants: crate::tenant::tenants_from_specs(config.tenants.clone()),
            cluster: Arc::new(crate::cluster::Cluster::new(
                node.clone(),
                cluster_config,
                busy.clone(),
            )),
            harbor: config.harbor_net.clone().map(|net| {
                crate::harbor::Harbor::new(
                    config.harbor,
                    net,
                    node.clone(),
                    config.max_message_size,
                    busy.clone(),
                )
            }),
            stm: crate::stm::StmStore::default(),
            share: crate::share::ShareStore::default(),
            config,
        });
        if let Some(harbor) = &shared.harbor {
            shared.router.set_remote(harbor.clone());
        }
        Ok(shared)
    }

    /// The `clusterd` service, while it runs.
    pub fn cluster_service(&self) -> Option<Handle> {
        self.cluster.service()
    }

    /// Queues a message a service sends, under its tenant's rules ([`Router::push_from`]);
    /// a refusal is counted and logged (thinned out) here.
    ///
    /// # Errors
    /// The [`Refusal`] (its [`Refusal::error`] is what a guest sees).
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
            Refusal::Remote => {
                sender.tenant().activity.refusals.add(RefusalKind::Denied);
                let refused = sender.stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if worth_logging(refused) {
                    self.log(
                        sender.handle(),
                        &format!(
                            "DENIED send (type {ptype}) to {dest} on harbor {}: tenant `{}` may \
                             not reach other harbor nodes (its `harbor` capability; {refused} \
                             refused so far)",
                            dest.harbor(),
                            sender.tenant().name()
                        ),
                    );
                }
            }
            Refusal::Denied(service) => {
                sender.tenant().activity.refusals.add(RefusalKind::Denied);
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
                service
                    .tenant()
                    .activity
                    .refusals
                    .add(RefusalKind::MailboxFull);
                let rejected = service.stats.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                if worth_logging(rejected) {
                    let tenant = service.tenant();
                    let limits = &tenant.spec.limits;
                    self.log(
                        service.handle(),
                        &format!(
                            "mailbox full ({}{} bytes{}): a message of {bytes} bytes \
                             from {} was refused ({rejected} refused so far)",
                            match limits.mailbox {
                                usize::MAX => String::new(),
                                count => format!("{count} messages or "),
                            },
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

    /// Notes the log service's handle once it runs (host lines go to it from then on).
    pub(crate) fn set_logger(&self, logger: Handle) {
        self.logger.store(logger.0, Ordering::Release);
    }

    /// The log service, or [`Handle::NONE`] before it runs.
    pub(crate) fn logger(&self) -> Handle {
        Handle(self.logger.load(Ordering::Acquire))
    }

    /// Blocks until the node is asked to stop, or `limit` passes; true if it was asked.
    pub(crate) fn wait_for_stop(&self, limit: Option<std::time::Duration>) -> bool {
        let deadline = limit.map(|limit| std::time::Instant::now() + limit);
        let mut guard = crate::sync::lock_plain(&self.quit_lock);
        while !self.is_quitting() {
            guard = match deadline {
                None => self
                    .quit_signal
                    .wait(guard)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(deadline) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    self.quit_signal
                        .wait_timeout(guard, deadline - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }

    /// Why the node stopped on a fatal host error ([`NodeShared::fail`]), if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
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
        self.modules.increment_epoch();
        // A service stuck in a long message would keep its worker (and the shutdown) waiting.
        for (_, service) in self.router.list() {
            service.interrupt_current();
        }
    }

    /// Stops the node because of a host error after which running on is not safe (a panic
    /// that left shared state half-changed, a thread of the node lost): logged, then a stop
    /// as by `ABORT`; `Node::stop` reports it, and the binary exits with status 1.
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
        let logger = self.logger();
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
        crate::socket::outbox::batch(dispatch)
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

/// The socket server's own notices go to the log.
fn socket_notices(node: std::sync::Weak<NodeShared>) -> crate::socket::NoticeSink {
    Box::new(move |text| {
        if let Some(node) = node.upgrade() {
            node.log(Handle::NONE, &format!("socket-server: {text}"));
        }
    })
}

#[cfg(test)]
mod tests;
