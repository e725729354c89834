//! The node: everything one skywasm process runs (skynet's `skynet_start.c` bring-up).
//!
//! [`Node::start`] brings the node up in skynet's order: the logger, then `bootstrap` (which
//! launches the launcher and the `start` service), then the timer, monitor and worker
//! threads; [`Node::stop`] takes them down. There is no process-global state: a test can
//! run several nodes in one process. What the threads and services share is
//! `shared::NodeShared`; nothing below this module imports it: it is the top of the
//! import graph (docs/architecture.md).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use skywasm_abi::{ptype, Handle};

use crate::config::NodeConfig;
use crate::lifecycle::LaunchError;
use crate::log::Shown;
use crate::module::split_command;
use crate::mq::Message;
pub use crate::scheduler::WORKER_STACK;
use crate::shared::NodeShared;
pub use crate::shared::StartError;

mod handle;
pub use handle::{ClusterError, NodeHandle, ServiceInfo, TenantUsage};
mod telemetry;
pub use telemetry::{LogLayer, Otlp};

/// A running node.
pub struct Node {
    shared: Arc<NodeShared>,
    workers: Vec<JoinHandle<()>>,
    /// The timer and monitor threads; they stop after the workers (the monitor's epoch ticks
    /// are what interrupt a worker stuck in guest code).
    background: Vec<JoinHandle<()>>,
    /// The Prometheus endpoint, when the config names `metrics`.
    metrics: Option<crate::metrics::endpoint::Endpoint>,
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
            metrics: None,
        };
        let logservice = shared.config.logservice.clone();
        let logger_arg = shared.config.logger.clone().unwrap_or_default();
        let logger = shared
            .launch(&logservice, &logger_arg)
            .map_err(|e| StartError::Logger(logservice.clone(), e))?;
        shared.set_logger(logger);
        if let Some(daemon) = &shared.config.daemon {
            shared.log(
                Handle::NONE,
                &format!("daemon = {daemon:?} is not supported: running in the foreground"),
            );
        }
        node.spawn_threads()?;
        if let Some(address) = shared.config.metrics {
            match crate::metrics::endpoint::Endpoint::start(Arc::downgrade(&shared), address) {
                Ok(endpoint) => {
                    let bound = endpoint.address();
                    let _ = shared.metrics.endpoint.set(bound);
                    shared.log(
                        Handle::NONE,
                        &format!("metrics: serving http://{bound}/metrics"),
                    );
                    node.metrics = Some(endpoint);
                }
                Err(e) => {
                    let _ = node.stop();
                    return Err(StartError::Metrics(address, e));
                }
            }
        }
        // As skynet's cslave before the rest of bootstrap: a node that cannot join the
        // network its config names does not start.
        if let Some(harbor) = shared.harbor.clone() {
            if let Err(e) = harbor.join() {
                let _ = node.stop();
                return Err(e.into());
            }
        }
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
        self.shared.wait_for_stop(None);
    }

    /// Like [`Node::wait`] with a time limit; returns true if the node was asked to stop.
    pub fn wait_timeout(&self, limit: std::time::Duration) -> bool {
        self.shared.wait_for_stop(Some(limit))
    }

    /// Stops the node: workers finish their current message (guest code is interrupted
    /// within one epoch period), the threads are joined, the log service writes what it
    /// still has queued, and every service is dropped. A worker still busy after
    /// [`STOP_GRACE`] (stuck in host code nothing can interrupt) is abandoned, with a log
    /// line naming the service it runs, so the stop always ends.
    pub fn stop(&mut self) -> StopReport {
        if let Some(mut endpoint) = self.metrics.take() {
            endpoint.stop();
        }
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
        let logger = shared.logger();
        let services = shared.router.retire_all();
        // Flush the log service's queue first so the last lines are not lost.
        if let Some((_, log_service)) = services.iter().find(|(h, _)| *h == logger) {
            crate::scheduler::drain_queue(log_service);
        }
        for (_, service) in services {
            service.discard();
        }
        let failure = shared.failure();
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
        || node.modules.increment_epoch(),
        |worker, running, ns| {
            node.metrics.sample_busy(worker, running, ns);
            if let Some(service) = node.router.service(running) {
                service.stats.busy_ns.fetch_add(ns, Ordering::Relaxed);
                service
                    .tenant()
                    .activity
                    .busy_ns
                    .fetch_add(ns, Ordering::Relaxed);
            }
        },
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
