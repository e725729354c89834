//! A service: its address, mailbox and running instance (skynet's `skynet_context` in
//! `skynet_server.c`), and [`ServiceCore`], what a running service uses to reach the node.
//!
//! A service is either native (Rust code in the host, such as the logger) or a wasm instance;
//! both implement [`Behavior`]. The instance sits in a mutex that only the thread holding the
//! service's queue locks (the queue's in-global invariant makes it uncontended); others may
//! only try it, for a short read (`MEMORY`, the node's stop). It is taken out when the
//! service ends, which also breaks the `Service -> instance -> ServiceCore -> Service`
//! reference cycle. What other threads want of the instance (an init, a signal, an upgrade,
//! the end) goes through the service's work word (`lifecycle/work.rs`); the fields behind
//! all this are private, reached through the methods named for what they do.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;
use skywasm_abi::{ptype, Handle, HostError};

use crate::lifecycle::upgrade::UpgradeRequest;
use crate::lifecycle::work::{Bits, Pending, Work};
use crate::log::MessageLog;
use crate::mq::{Message, MessageQueue};
use crate::shared::NodeShared;
pub use crate::tenant::Capabilities;
use crate::tenant::{Tenant, TokenBucket};

/// A fault that ends a service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The guest's code stopped in one of its exports: a trap, or an interrupt (`KILL`,
    /// `SIGNAL 0`, the node stopping) or a limit (CPU, stack) that surfaced as one.
    #[error("{} (in {}{})", .cause, .export, at_function(.function))]
    Trap {
        /// The export that was running (`skywasm_dispatch`, ...).
        export: String,
        /// What kind of stop it was, for the counts by cause.
        kind: crate::tenant::FaultCause,
        /// What stopped it.
        cause: String,
        /// The innermost guest function with a name, when the backtrace has one.
        function: Option<String>,
    },
    /// The guest broke the ABI's contract (an allocation outside its memory, ...).
    #[error("{0}")]
    Abi(String),
    /// Host code panicked while serving the service.
    #[error("host panic: {0}")]
    HostPanic(String),
    /// A native service ended itself with this reason.
    #[error("{0}")]
    Native(String),
}

impl Fault {
    /// The cause it is counted under.
    pub fn cause(&self) -> crate::tenant::FaultCause {
        use crate::tenant::FaultCause;
        match self {
            Fault::Trap { kind, .. } => *kind,
            Fault::Abi(_) => FaultCause::Abi,
            Fault::HostPanic(_) => FaultCause::HostPanic,
            Fault::Native(_) => FaultCause::Native,
        }
    }
}

/// The `, at guest function ...` part of a trap's text.
fn at_function(function: &Option<String>) -> String {
    function
        .as_ref()
        .map_or_else(String::new, |f| format!(", at guest function `{f}`"))
}

/// What every kind of service instance does.
pub trait Behavior: Send {
    /// The node-facing state of this service.
    fn core(&mut self) -> &mut ServiceCore;

    /// Handles one message. An `Err` ends the service.
    ///
    /// # Errors
    /// A [`Fault`] when the instance trapped or broke the ABI; it is then discarded.
    fn dispatch(&mut self, message: Message) -> Result<(), Fault>;

    /// skynet's module `signal` entry (the `SIGNAL` command) for an idle service.
    ///
    /// # Errors
    /// A [`Fault`] ends the service, as in [`Behavior::dispatch`].
    fn signal(&mut self, _signal: i32) -> Result<(), Fault> {
        Ok(())
    }

    /// Bytes of linear memory in use, for wasm services.
    fn memory_size(&mut self) -> Option<usize> {
        None
    }

    /// Asks the running code for the state an upgrade hands to the new code.
    ///
    /// # Errors
    /// A [`Fault`] when the instance trapped (it is then discarded).
    fn snapshot(&mut self) -> Result<Snapshot, Fault> {
        Ok(Snapshot::Unsupported)
    }
}

/// State the code of a service hands to its successor in an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// The guest's own version number of the state's format.
    pub version: u32,
    /// The state.
    pub bytes: Vec<u8>,
}

/// What the running code answered when asked for its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// The code has no snapshot entry: the new code starts fresh.
    Unsupported,
    /// The code handed nothing over: the new code starts fresh.
    Empty,
    /// The state to hand over.
    State(SavedState),
    /// The code refused the upgrade (its snapshot entry returned this value).
    Refused(i32),
}

/// The init of a service launched with [`crate::shared::NodeShared::launch_deferred`], run
/// later by a worker.
pub(crate) type DeferredStart =
    Box<dyn FnOnce(ServiceCore) -> Result<Box<dyn Behavior>, crate::lifecycle::LaunchError> + Send>;

/// Counters read by `STAT` and the console.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages dispatched.
    pub messages: AtomicU64,
    /// Messages it sent that were taken (into a mailbox, or towards another node). Only
    /// the holder of its queue counts (a plain store), as with `messages`.
    pub sent: AtomicU64,
    /// Its busy time in nanoseconds, sampled: each look of the monitor (every 10 ms) that
    /// found a worker running its message adds the time since the look before. No clock is
    /// read on the message path.
    pub busy_ns: AtomicU64,
    /// Thread CPU nanoseconds spent in dispatch (only with `profile = true`).
    pub cpu_ns: AtomicU64,
    /// Set by the monitor when a message ran for a whole check period.
    pub endless: AtomicBool,
    /// Sends this service made that its tenant's rules refused.
    pub refused: AtomicU64,
    /// Messages refused because this service's mailbox was full.
    pub rejected: AtomicU64,
    /// Bytes of linear memory at the last reading: at start, then whenever `MEMORY` found
    /// the instance idle (wasm services).
    pub memory: AtomicU64,
}

/// One service of a node.
pub struct Service {
    handle: Handle,
    /// What it runs: module and argument string (an upgrade changes them).
    code: std::sync::RwLock<(Arc<str>, Arc<str>)>,
    /// The mailbox: pushed by the router, popped by the worker holding it (the
    /// scheduler), held, released and closed by the lifecycle; nothing else touches it
    /// (others read [`Service::queue_len`]).
    pub(crate) queue: MessageQueue,
    /// The instance; `None` while its init runs and after it ended. Only the thread holding
    /// the queue locks it ([`Service::instance`]); others may only try
    /// ([`Service::try_instance`]), so the holder never waits long for it.
    instance: Mutex<Option<Box<dyn Behavior>>>,
    /// Work asked of the holder of its queue, and where it is in its life
    /// ([`crate::lifecycle::work`] has the protocol).
    work: Work,
    /// Number of calls into the instance so far (init, messages, signals).
    calls: AtomicU64,
    /// The number of the call into the instance that is running now (0 = none).
    dispatching: AtomicU64,
    /// The number of a call to abort at the next epoch check.
    interrupt: AtomicU64,
    /// The number of a call whose guest is told of `SIGNAL 0` (`skywasm_interrupt`) at the
    /// next epoch check, instead of being stopped.
    soft_interrupt: AtomicU64,
    /// Dispatch counters.
    pub stats: Stats,
    /// When its queue was last made ready, if that was sampled for the schedule delay
    /// ([`crate::metrics::Timings`]; 0: not sampled).
    pub(crate) ready_at: AtomicU64,
    /// Message log opened by `LOGON`.
    message_log: MessageLog,
    /// The tenant it belongs to.
    tenant: Arc<Tenant>,
    /// Why the guest was last told to stop its work (`skywasm_interrupt`), as an
    /// [`InterruptReason`] (`STAT interrupt`).
    interrupt_reason: std::sync::atomic::AtomicU8,
    /// The init a worker runs before the first message (a deferred launch; `START`).
    deferred_start: Mutex<Option<DeferredStart>>,
    /// An upgrade asked for and not begun yet (`UPGRADE`).
    upgrade: Mutex<Option<UpgradeRequest>>,
    /// Its messages that ran past the network thread's assist budget there; at
    /// [`crate::scheduler::ASSIST_STRIKES`] the network thread never runs it again.
    assist_overruns: std::sync::atomic::AtomicU8,
    /// Its guest's log lines against the tenant's `log_rate`.
    log_budget: TokenBucket,
    /// Guest log lines dropped since the last one logged.
    log_dropped: AtomicU64,
    /// Its timeouts pending, with [`TIMERS_RELEASED`] set once it ended (its count then went
    /// back to its tenant at once; timeouts that fire later count for nobody).
    timers: AtomicU32,
    /// Set while one of its sockets waits for its mailbox to drain (`socket_backlog`).
    sockets_waiting: AtomicBool,
    /// Wakes its waiting sockets once the mailbox holds half the backlog or less.
    sockets_drained: tokio::sync::Notify,
}

impl Service {
    /// A live service whose queue is held until its init finishes.
    pub(crate) fn new(handle: Handle, module: &str, args: &str, tenant: Arc<Tenant>) -> Service {
        Service {
            handle,
            code: std::sync::RwLock::new((module.into(), args.into())),
            queue: match tenant.mailbox_account() {
                Some(account) => MessageQueue::new_held_counted(account),
                None => MessageQueue::new_held(),
            },
            instance: Mutex::new(None),
            work: Work::default(),
            calls: AtomicU64::new(0),
            dispatching: AtomicU64::new(0),
            interrupt: AtomicU64::new(0),
            soft_interrupt: AtomicU64::new(0),
            stats: Stats::default(),
            ready_at: AtomicU64::new(0),
            message_log: MessageLog::default(),
            interrupt_reason: std::sync::atomic::AtomicU8::new(0),
            deferred_start: Mutex::new(None),
            upgrade: Mutex::new(None),
            assist_overruns: std::sync::atomic::AtomicU8::new(0),
            log_budget: TokenBucket::new(tenant.spec.limits.log_rate),
            log_dropped: AtomicU64::new(0),
            timers: AtomicU32::new(0),
            sockets_waiting: AtomicBool::new(false),
            sockets_drained: tokio::sync::Notify::new(),
            tenant,
        }
    }

    /// Counts a timeout it armed (its tenant counted it already).
    pub(crate) fn count_timer(&self) {
        self.timers.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts one of its timeouts that fired; false when it ended before (the timeout was
    /// given back to its tenant then, and nobody waits for it).
    pub(crate) fn timer_fired(&self) -> bool {
        self.timers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n & TIMERS_RELEASED == 0 && n > 0).then(|| n - 1)
            })
            .is_ok()
    }

    /// Its timeouts pending now.
    pub(crate) fn pending_timers(&self) -> u32 {
        unreleased(self.timers.load(Ordering::Acquire))
    }

    /// Ends its timeouts' count: how many were pending (to give back to its tenant).
    pub(crate) fn release_timers(&self) -> u32 {
        unreleased(self.timers.swap(TIMERS_RELEASED, Ordering::AcqRel))
    }

    /// True when its mailbox holds more than its tenant's `socket_backlog` (or is full):
    /// its sockets stop reading, and cluster connections delivering to it too.
    pub(crate) fn socket_backlog_over(&self) -> bool {
        let (max_len, max_bytes) = self.backlog();
        let (len, bytes) = self.queue.occupancy();
        bytes > max_bytes || len >= max_len
    }

    /// The messages and bytes in its mailbox past which its sockets stop reading: its
    /// tenant's `socket_backlog`, or the mailbox's own limits when they are lower.
    fn backlog(&self) -> (usize, usize) {
        let limits = &self.tenant.spec.limits;
        (
            limits.mailbox,
            limits.socket_backlog.min(limits.mailbox_bytes),
        )
    }

    /// Wakes its sockets (and cluster connections) waiting for the mailbox to drain, once
    /// it holds half the backlog or less (the worker calls it after each message: one
    /// relaxed load when none waits).
    pub(crate) fn wake_sockets_if_drained(&self) {
        if !self.sockets_waiting.load(Ordering::Relaxed) {
            return;
        }
        let (max_len, max_bytes) = self.backlog();
        let (len, bytes) = self.queue.occupancy();
        if bytes <= max_bytes / 2
            && len <= max_len / 2
            && self.sockets_waiting.swap(false, Ordering::AcqRel)
        {
            self.sockets_drained.notify_waiters();
        }
    }

    /// False once it overran the network thread's assist budget too often.
    pub(crate) fn assistable(&self) -> bool {
        self.assist_overruns.load(Ordering::Relaxed) < crate::scheduler::ASSIST_STRIKES
    }

    /// Counts a message of its that ran past the network thread's assist budget; how many
    /// did so far.
    pub(crate) fn note_assist_overrun(&self) -> u8 {
        self.assist_overruns.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Its instance, locked. Only the thread holding its queue calls this (a worker, or
    /// the launching thread while the init runs): the queue's in-global invariant makes the
    /// lock uncontended but for [`Service::try_instance`]'s short reads.
    pub(crate) fn instance(&self) -> std::sync::MutexGuard<'_, Option<Box<dyn Behavior>>> {
        crate::sync::lock_plain(&self.instance)
    }

    /// Its instance if no thread holds it now: for readers that are not the queue's holder
    /// (`MEMORY`, the node's stop) and must never wait for it.
    pub(crate) fn try_instance(
        &self,
    ) -> Option<std::sync::MutexGuard<'_, Option<Box<dyn Behavior>>>> {
        match self.instance.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(guard)) => Some(guard.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Keeps the init a worker runs before the first message (a deferred launch).
    pub(crate) fn set_deferred_start(&self, start: DeferredStart) {
        *crate::sync::lock(&self.deferred_start) = Some(start);
    }

    /// Takes the init left to a worker, if it has not run yet.
    pub(crate) fn take_deferred_start(&self) -> Option<DeferredStart> {
        crate::sync::lock(&self.deferred_start).take()
    }

    /// Keeps an upgrade for the holder of its queue to run.
    ///
    /// # Errors
    /// The request comes back when one is pending already.
    pub(crate) fn park_upgrade(&self, request: UpgradeRequest) -> Result<(), UpgradeRequest> {
        let mut pending = crate::sync::lock(&self.upgrade);
        if pending.is_some() {
            return Err(request);
        }
        *pending = Some(request);
        Ok(())
    }

    /// Takes the upgrade parked by [`Service::park_upgrade`], if any.
    pub(crate) fn take_upgrade(&self) -> Option<UpgradeRequest> {
        crate::sync::lock(&self.upgrade).take()
    }

    /// Its message log (`LOGON`).
    pub(crate) fn message_log(&self) -> &MessageLog {
        &self.message_log
    }

    /// Records why its guest was told to stop its work.
    pub(crate) fn note_interrupt_reason(&self, reason: InterruptReason) {
        self.interrupt_reason.store(reason as u8, Ordering::Relaxed);
    }

    /// Why its guest was last told to stop its work.
    pub(crate) fn interrupt_reason(&self) -> InterruptReason {
        match self.interrupt_reason.load(Ordering::Relaxed) {
            1 => InterruptReason::Cpu,
            _ => InterruptReason::Signal,
        }
    }

    /// Asks the holder of its queue for `work` (`START`, `UPGRADE`, `DEAD`); true when the
    /// queue was idle and the caller must make the service ready.
    pub(crate) fn ask(&self, work: Bits) -> bool {
        self.work.set(work);
        self.queue.schedule()
    }

    /// Stores `signal` for the holder of its queue to deliver (it replaces one not
    /// delivered yet); true when the caller must make the service ready.
    pub(crate) fn ask_signal(&self, signal: i32) -> bool {
        self.work.post_signal(signal);
        self.queue.schedule()
    }

    /// The signal asked for by [`Service::ask_signal`], if any, taking it.
    pub(crate) fn take_signal(&self) -> Option<i32> {
        self.work.take_signal()
    }

    /// Its word itself, for the model test of the protocol.
    #[cfg(test)]
    pub(crate) fn work(&self) -> &Work {
        &self.work
    }

    /// Its word now: the work asked of its holder and its life state.
    pub(crate) fn pending(&self) -> Pending {
        self.work.read()
    }

    /// Takes the asked `work` (the holder, before doing it); true when it was asked.
    pub(crate) fn take_work(&self, work: Bits) -> bool {
        self.work.take(work)
    }

    /// Marks it as one whose deferred init failed: it never started.
    pub(crate) fn mark_never_started(&self) {
        self.work.set(Bits::NEVER_STARTED);
    }

    /// True when its deferred init failed.
    pub(crate) fn never_started(&self) -> bool {
        self.work.read().has(Bits::NEVER_STARTED)
    }

    /// Marks its instance as one that stops its own work when told of `SIGNAL 0`.
    pub(crate) fn mark_interruptible(&self) {
        self.work.set(Bits::INTERRUPTIBLE);
    }

    /// True when its instance stops its own work when told of `SIGNAL 0`.
    pub(crate) fn is_interruptible(&self) -> bool {
        self.work.read().has(Bits::INTERRUPTIBLE)
    }

    /// After its holder let the queue go: true when work was asked meanwhile and the
    /// queue was scheduled again, so the caller must make the service ready (see
    /// [`crate::lifecycle::work`]).
    pub(crate) fn reschedule_if_owed(&self) -> bool {
        self.work.read().owes() && self.queue.schedule()
    }

    /// Marks an ended service finalized; true for the one call that did it.
    pub(crate) fn mark_finalized(&self) -> bool {
        self.work.set(Bits::FINALIZED)
    }

    /// The tenant it belongs to.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// Logs a line its guest wrote (the `log` import, stdout, stderr), within its tenant's
    /// `log_rate`: lines over the rate are dropped and counted, and the next line logged
    /// says how many were.
    pub(crate) fn guest_log(&self, node: &NodeShared, text: &str) {
        if !self.log_budget.take() || !self.tenant.take_log_token() {
            self.log_dropped.fetch_add(1, Ordering::Relaxed);
            self.tenant
                .activity
                .refusals
                .add(crate::tenant::RefusalKind::LogRate);
            return;
        }
        let dropped = self.log_dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let limits = &self.tenant.spec.limits;
            node.log(
                self.handle,
                &format!(
                    "({dropped} log lines dropped: over the log_rate of {}/s per service or \
                     the tenant_log_rate of {}/s of tenant `{}`)",
                    limits.log_rate,
                    limits.tenant_log_rate,
                    self.tenant.name()
                ),
            );
        }
        node.log_line(self.handle, text);
    }

    /// Its scheduling class in the global queue: its tenant's index.
    pub fn class(&self) -> usize {
        self.tenant.index
    }

    /// The service's address.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The module it runs (`logger`, `launcher`, a wasm module name).
    pub fn module(&self) -> Arc<str> {
        crate::sync::read(&self.code).0.clone()
    }

    /// Its argument string.
    pub fn args(&self) -> Arc<str> {
        crate::sync::read(&self.code).1.clone()
    }

    /// Records the code an upgrade started.
    pub(crate) fn set_code(&self, module: &str, args: &str) {
        *crate::sync::write(&self.code) = (module.into(), args.into());
    }

    /// Messages waiting in its mailbox.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Bytes of the messages waiting in its mailbox.
    pub fn queue_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// False once the service exited, was killed or faulted.
    pub fn is_alive(&self) -> bool {
        !self.work.read().has(Bits::DEAD)
    }

    /// Ends the service at the node's stop, without a finalize (nobody is left to answer):
    /// its instance is dropped unless an abandoned worker still holds it (it stays with
    /// that worker), and its mailbox is closed.
    pub(crate) fn discard(&self) {
        self.mark_dead();
        let behavior = self.try_instance().and_then(|mut slot| slot.take());
        drop(behavior);
        self.queue.close();
    }

    /// Marks the service dead; returns true for the call that did it.
    pub(crate) fn mark_dead(&self) -> bool {
        self.work.set(Bits::DEAD)
    }

    /// Runs one call into the instance (init, a message, a signal) under its own call number,
    /// so `KILL`, `SIGNAL 0` and node stop can interrupt exactly that call. Returns the
    /// call's result and whether it was marked for interruption. Only the thread that holds
    /// the instance calls this.
    pub(crate) fn run_call<R>(&self, call: impl FnOnce() -> R) -> (R, bool) {
        let number = self.calls.load(Ordering::Relaxed) + 1;
        self.calls.store(number, Ordering::Relaxed);
        self.dispatching.store(number, Ordering::Release);
        let result = call();
        self.dispatching.store(0, Ordering::Release);
        (result, self.interrupt.load(Ordering::Acquire) == number)
    }

    /// True while a call into its instance runs.
    pub(crate) fn is_running(&self) -> bool {
        self.dispatching.load(Ordering::Acquire) != 0
    }

    /// Forgets the running call: a host panic unwound out of [`Service::run_call`].
    pub(crate) fn end_call(&self) {
        self.dispatching.store(0, Ordering::Release);
    }

    /// True when the running call must stop at the next epoch check: it was marked by
    /// `KILL` from another service, `SIGNAL 0` or the node stopping (an `EXIT` of its own
    /// lets it finish).
    pub(crate) fn should_interrupt(&self) -> bool {
        let current = self.dispatching.load(Ordering::Acquire);
        current != 0 && self.interrupt.load(Ordering::Acquire) == current
    }

    /// Marks the call into the instance that is running, if any, for interruption.
    pub(crate) fn interrupt_current(&self) {
        let current = self.dispatching.load(Ordering::Acquire);
        if current != 0 {
            self.interrupt.store(current, Ordering::Release);
        }
    }

    /// Marks the running call, if any, to be told of `SIGNAL 0` at the next epoch check.
    pub(crate) fn soft_interrupt_current(&self) {
        let current = self.dispatching.load(Ordering::Acquire);
        if current != 0 {
            self.soft_interrupt.store(current, Ordering::Release);
        }
    }

    /// True, once, when the running call was marked by [`Service::soft_interrupt_current`].
    pub(crate) fn take_soft_interrupt(&self) -> bool {
        let current = self.dispatching.load(Ordering::Acquire);
        current != 0
            && self
                .soft_interrupt
                .compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// Why a guest was told to stop its work (`skywasm_interrupt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InterruptReason {
    /// `SIGNAL 0` while it ran a message.
    Signal = 0,
    /// Its message passed the soft CPU limit.
    Cpu = 1,
}

/// True for message types that expect a reply when they carry a session.
pub fn is_request(ptype: u8) -> bool {
    !matches!(ptype as u32, ptype::RESPONSE | ptype::ERROR)
}

/// Whether a message of `ptype` with a session is owed an answer: a request other than a
/// multicast, whose session is its channel (skynet's multicastd) and which nothing answers.
pub fn expects_answer(ptype: u8) -> bool {
    is_request(ptype) && u32::from(ptype) != ptype::MULTICAST
}

/// Most requests a service of an untrusted tenant may leave unanswered at once; more are
/// answered with an error when they arrive.
pub const MAX_UNTRUSTED_OWED: usize = 65_536;

/// What a running service uses to reach the node: sessions, sending, commands. It also keeps
/// the requests the service received and has not answered, so that when the service ends
/// every caller still waiting on it gets an error instead of hanging.
pub struct ServiceCore {
    pub(crate) node: Arc<NodeShared>,
    pub(crate) service: Arc<Service>,
    last_session: i32,
    /// `(requester, session)` of received requests not answered yet, with a count (a
    /// requester may reuse a session only after its reply, but counting keeps it exact).
    owed: FxHashMap<(Handle, i32), u32>,
    /// Thread CPU time at the start of the current message (with `profile`).
    pub(crate) message_started_ns: Option<u64>,
    /// What this service is allowed to do.
    pub capabilities: Capabilities,
    /// The service last sent to: a conversation partner is found without the handle table.
    last_destination: Option<Arc<Service>>,
    /// After an upgrade: the last session the old code allocated. Replies and timeouts
    /// carrying a session up to it belong to the old code and are dropped.
    stale_floor: Option<i32>,
    /// Set while this core's code is being started by an upgrade: an `EXIT` then fails the
    /// upgrade instead of ending the service.
    pub(crate) upgrading: bool,
    /// The code being started by an upgrade asked to exit.
    pub(crate) exit_requested: bool,
}

impl ServiceCore {
    pub(crate) fn new(node: Arc<NodeShared>, service: Arc<Service>) -> ServiceCore {
        let capabilities = service.tenant().spec.capabilities;
        ServiceCore {
            node,
            service,
            last_session: 0,
            owed: FxHashMap::default(),
            message_started_ns: None,
            capabilities,
            last_destination: None,
            stale_floor: None,
            upgrading: false,
            exit_requested: false,
        }
    }

    /// The core of the code that replaces this one in an upgrade: the same service, its
    /// session counter carried on (so replies to the old code's calls, and its timeouts, are
    /// told apart and dropped), nothing owed yet.
    pub(crate) fn successor(&self) -> ServiceCore {
        ServiceCore {
            node: self.node.clone(),
            service: self.service.clone(),
            last_session: self.last_session,
            owed: FxHashMap::default(),
            message_started_ns: None,
            capabilities: self.capabilities,
            last_destination: None,
            stale_floor: (self.last_session > 0).then_some(self.last_session),
            upgrading: true,
            exit_requested: false,
        }
    }

    /// True for a reply or timeout meant for the code this one replaced.
    pub(crate) fn is_stale_reply(&self, message: &Message) -> bool {
        self.stale_floor.is_some_and(|floor| {
            message.session > 0 && message.session <= floor && !is_request(message.ptype)
        })
    }

    /// This service's address.
    pub fn handle(&self) -> Handle {
        self.service.handle()
    }

    /// The service itself.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// The node it runs in.
    pub(crate) fn node(&self) -> &Arc<NodeShared> {
        &self.node
    }

    /// Allocates a session (skynet's `skynet_context_newsession`: positive, wraps to 1).
    pub fn new_session(&mut self) -> i32 {
        self.last_session = self.last_session.wrapping_add(1);
        if self.last_session <= 0 {
            self.last_session = 1;
            // The counter wrapped: the old code's sessions are reused from here on.
            self.stale_floor = None;
        }
        self.last_session
    }

    /// Records a message about to be dispatched to this service; false for one it must not
    /// see: a reply or timeout meant for the code an upgrade replaced.
    pub(crate) fn note_delivery(&mut self, message: &Message) -> bool {
        if self.is_stale_reply(message) {
            return false;
        }
        // From address 0 (socket events, a gate's redirected client packets whose session
        // is the fd) nothing waits for an answer: an answer could not even be delivered.
        if message.session != 0 && expects_answer(message.ptype) && !message.source.is_none() {
            let tenant = self.service.tenant();
            if !tenant.is_trusted() && self.owed.len() >= MAX_UNTRUSTED_OWED {
                // A service of an untrusted tenant that leaves this many requests
                // unanswered gets no more: each is answered with an error at once, so the
                // host keeps no unbounded list of obligations for it.
                let refused = self.service.stats.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                tenant
                    .activity
                    .refusals
                    .add(crate::tenant::RefusalKind::Owed);
                if crate::log::worth_logging(refused) {
                    self.node.log(
                        self.handle(),
                        &format!(
                            "request from {} refused: {MAX_UNTRUSTED_OWED} requests wait for \
                             this service's answers (tenant `{}`; {refused} refused so far)",
                            message.source,
                            tenant.name()
                        ),
                    );
                }
                self.node
                    .router
                    .answer_error(message.source, self.handle(), message.session);
                return false;
            }
            *self
                .owed
                .entry((message.source, message.session))
                .or_insert(0) += 1;
        }
        true
    }

    /// Marks a request as answered; true if it was owed.
    fn settle(&mut self, requester: Handle, session: i32) -> bool {
        let Some(count) = self.owed.get_mut(&(requester, session)) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.owed.remove(&(requester, session));
        }
        true
    }

    /// Gives up the answer to a request it received: something outside its code answers it
    /// (`clusterd` hands a call to the network, whose reply goes to the caller directly).
    pub(crate) fn disown(&mut self, requester: Handle, session: i32) {
        self.settle(requester, session);
    }

    /// Takes the unanswered requests (used when the service ends).
    pub(crate) fn take_owed(&mut self) -> Vec<(Handle, i32)> {
        self.owed
            .drain()
            .flat_map(|((h, s), n)| std::iter::repeat_n((h, s), n as usize))
            .collect()
    }

    /// Number of requests received and not answered.
    pub fn owed_len(&self) -> usize {
        self.owed.len()
    }

    /// Sends a message from this service.
    ///
    /// # Errors
    /// An ABI error code: [`HostError::TooLarge`], [`HostError::InvalidAddress`].
    pub fn send(
        &mut self,
        dest: Handle,
        ptype: u8,
        session: i32,
        data: Box<[u8]>,
    ) -> Result<(), HostError> {
        let source = self.handle();
        self.send_as(dest, source, ptype, session, data)
    }

    /// The largest message body it may send (its tenant's `message_size`, at most the
    /// node's `max_message_size`).
    pub fn message_size(&self) -> usize {
        let tenant = self.service.tenant().spec.limits.message_size;
        tenant.min(self.node.config.max_message_size)
    }

    /// Sends a message with the given source; a forwarded request moves the obligation to
    /// answer it to the new destination. When that destination cannot take it (gone,
    /// full, refused), the host answers the request with `PTYPE_ERROR` on the destination's
    /// behalf, so the original caller is never left waiting.
    fn send_as(
        &mut self,
        dest: Handle,
        source: Handle,
        ptype: u8,
        session: i32,
        data: Box<[u8]>,
    ) -> Result<(), HostError> {
        if data.len() > self.message_size() {
            self.service
                .tenant()
                .activity
                .refusals
                .add(crate::tenant::RefusalKind::MessageSize);
            return Err(HostError::TooLarge);
        }
        let mut answer = false;
        let mut forwarded = false;
        if session != 0 {
            if !is_request(ptype) {
                answer = self.settle(dest, session);
            } else if expects_answer(ptype) && source != self.handle() {
                forwarded = self.settle(source, session);
            }
        }
        let message = Message {
            source,
            session,
            ptype,
            data: data.into(),
        };
        let pushed = self.node.push_from(
            &self.service,
            answer,
            dest,
            message,
            &mut self.last_destination,
        );
        match &pushed {
            Ok(()) => self.count_sent(1),
            // The obligation left with the request, which never arrived: answer as a
            // service that ends answers the requests left in its mailbox.
            Err(_) if forwarded => self.node.router.answer_error(source, dest, session),
            Err(_) => {}
        }
        pushed.map_err(|refusal| refusal.error())
    }

    /// Sends a request with a fresh session and returns the session.
    ///
    /// # Errors
    /// As [`ServiceCore::send`].
    pub fn call(&mut self, dest: Handle, ptype: u8, data: Box<[u8]>) -> Result<i32, HostError> {
        if dest.is_none() {
            return Err(HostError::InvalidAddress);
        }
        let session = self.new_session();
        self.send(dest, ptype, session, data)?;
        Ok(session)
    }

    /// Sends pretending another source (skynet's `skynet_send` with a source; `redirect`).
    ///
    /// # Errors
    /// As [`ServiceCore::send`], plus [`HostError::Denied`] without the capability.
    pub fn redirect(
        &mut self,
        dest: Handle,
        source: Handle,
        ptype: u8,
        session: i32,
        data: Box<[u8]>,
    ) -> Result<(), HostError> {
        if !self.capabilities.redirect {
            return Err(HostError::Denied);
        }
        self.send_as(dest, source, ptype, session, data)
    }

    /// Delivers one body to every service of `dests` as `PTYPE_MULTICAST` from `source`
    /// with `session` (the channel, as skynet's multicastd sends it), all messages sharing
    /// the one copy; a destination that is gone or refuses (a full mailbox) is skipped, as
    /// a redirect to it would be lost. Returns how many took it. The caller checked the
    /// redirect capability.
    pub fn multicast(
        &mut self,
        source: Handle,
        session: i32,
        data: Arc<[u8]>,
        dests: &[Handle],
    ) -> usize {
        let mut delivered = 0;
        for &dest in dests {
            let message = Message {
                source,
                session,
                ptype: ptype::MULTICAST as u8,
                data: data.clone().into(),
            };
            if self
                .node
                .push_from(
                    &self.service,
                    false,
                    dest,
                    message,
                    &mut self.last_destination,
                )
                .is_ok()
            {
                delivered += 1;
            }
        }
        self.count_sent(delivered as u64);
        delivered
    }

    /// Counts messages this service sent (`Stats::sent`). Only the worker holding its queue
    /// runs its code, so a plain store suffices: no atomic read-modify-write per message.
    fn count_sent(&self, count: u64) {
        let sent = &self.service.stats.sent;
        sent.store(sent.load(Ordering::Relaxed) + count, Ordering::Relaxed);
    }

    /// Resolves a destination name: `:hex` addresses, `.local` and global names (an
    /// untrusted tenant's own names first).
    ///
    /// # Errors
    /// [`HostError::UnknownName`] or [`HostError::InvalidArgument`].
    pub fn resolve(&self, name: &str) -> Result<Handle, HostError> {
        let local = self
            .node
            .router
            .resolve_in(self.service.tenant().name_scope(), name);
        match (&local, &self.node.harbor) {
            // In a harbor network, a global name another node registered.
            (Err(HostError::UnknownName), Some(harbor)) => {
                harbor.global_name(name).ok_or(HostError::UnknownName)
            }
            _ => local,
        }
    }

    /// Where a send to `name` goes: the service it names, or, in a harbor network, a global
    /// name no node has named to this one yet (the message then waits for the master).
    ///
    /// # Errors
    /// As [`ServiceCore::resolve`].
    pub fn destination(&self, name: &str) -> Result<Destination, HostError> {
        match self.resolve(name) {
            Ok(handle) => Ok(Destination::At(handle)),
            Err(HostError::UnknownName)
                if self.node.harbor.is_some() && crate::harbor::is_global_name(name) =>
            {
                Ok(Destination::Global(name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends to global name `name` once the harbor knows where it is (at once when it
    /// does), as skynet's harbor service queues messages for a name it is asking about.
    ///
    /// # Errors
    /// [`HostError::UnknownName`] outside a harbor network, [`HostError::TooLarge`],
    /// [`HostError::Denied`] for an untrusted tenant without the `harbor` capability,
    /// [`HostError::Limit`] when too much waits for global names already.
    pub fn send_global(
        &mut self,
        name: &str,
        ptype: u8,
        session: i32,
        data: Box<[u8]>,
    ) -> Result<(), HostError> {
        let Some(harbor) = self.node.harbor.clone() else {
            return Err(HostError::UnknownName);
        };
        if data.len() > self.message_size() {
            return Err(HostError::TooLarge);
        }
        if !self.service.tenant().spec.capabilities.harbor {
            return Err(HostError::Denied);
        }
        let message = Message {
            source: self.handle(),
            session,
            ptype,
            data: data.into(),
        };
        harbor
            .send_name(name, message, Some(self.service.tenant()))
            .map_err(|_| HostError::Limit)
    }

    /// [`ServiceCore::call`] to a global name ([`ServiceCore::send_global`]).
    ///
    /// # Errors
    /// As [`ServiceCore::send_global`].
    pub fn call_global(
        &mut self,
        name: &str,
        ptype: u8,
        data: Box<[u8]>,
    ) -> Result<i32, HostError> {
        let session = self.new_session();
        self.send_global(name, ptype, session, data)?;
        Ok(session)
    }

    /// How a native service answers a `"lua"` request it ran: with the values (packed), or
    /// PTYPE_ERROR carrying the failure's text; nothing for `Ok(None)` (answered later, or
    /// not at all) or a push (session 0), whose failure the caller logs.
    pub(crate) fn answer_lua(
        &mut self,
        request: &Message,
        outcome: &Result<Option<Vec<skywasm_pack::Value>>, String>,
    ) {
        if request.session == 0 {
            return;
        }
        let (kind, body) = match outcome {
            Ok(None) => return,
            Ok(Some(values)) => skywasm_pack::pack(values)
                .map(|body| (ptype::RESPONSE, body))
                .unwrap_or_else(|e| (ptype::ERROR, e.to_string().into_bytes())),
            Err(why) => (ptype::ERROR, why.clone().into_bytes()),
        };
        let _ = self.send(request.source, kind as u8, request.session, body.into());
    }

    /// Writes one line to the node's log with this service as the source.
    pub fn log(&self, text: &str) {
        self.node.log(self.handle(), text);
    }
}

/// Where a send to a name goes ([`ServiceCore::destination`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A service's address (here or on another harbor node).
    At(Handle),
    /// A global name of a harbor network not known here yet.
    Global(String),
}

/// The mark of [`Service::release_timers`] in its timer count.
const TIMERS_RELEASED: u32 = 1 << 31;

/// The timeouts a timer word counts, none once [`TIMERS_RELEASED`] is set.
fn unreleased(word: u32) -> u32 {
    if word & TIMERS_RELEASED == 0 {
        word
    } else {
        0
    }
}

impl crate::clock::Owner for Service {
    fn is_alive(&self) -> bool {
        Service::is_alive(self)
    }
}

impl crate::socket::Backlog for Service {
    fn over(&self) -> bool {
        self.is_alive() && self.socket_backlog_over()
    }

    fn drained(&self) -> &tokio::sync::Notify {
        self.sockets_waiting.store(true, Ordering::Release);
        &self.sockets_drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mq::Body;
    use crate::shared::testing::{as_service, drain, idle_node, quiet_in};

    #[test]
    fn an_upgraded_service_drops_old_replies_but_takes_multicasts_on_old_session_numbers() {
        let node = idle_node("");
        let sub = quiet_in(&node, "node", "sub");
        let upgraded = as_service(&node, sub, |core| {
            for _ in 0..300 {
                core.new_session();
            }
            core.successor()
        });
        let message = |ptype: u32, session: i32| Message {
            source: Handle(0x42),
            session,
            ptype: ptype as u8,
            data: Body::default(),
        };
        // a reply to the old code's call 256 is stale; a publish on channel 256 is not
        assert!(upgraded.is_stale_reply(&message(ptype::RESPONSE, 256)));
        assert!(!upgraded.is_stale_reply(&message(ptype::MULTICAST, 256)));
        let mut upgraded = upgraded;
        assert!(upgraded.note_delivery(&message(ptype::MULTICAST, 256)));
        assert!(
            upgraded.owed.is_empty(),
            "a multicast leaves nothing to answer"
        );
    }

    #[test]
    fn a_multicast_is_held_once_and_needs_the_redirect_capability() {
        let node = idle_node("tenants = { guest = {} }");
        let publisher = quiet_in(&node, "node", "publisher");
        let subscribers: Vec<Handle> = (0..3).map(|_| quiet_in(&node, "node", "sub")).collect();
        let gone = Handle(0x00ff_fff0);
        let mut dests = subscribers.clone();
        dests.push(gone);
        let body: Arc<[u8]> = Arc::from(&b"hello"[..]);
        let delivered = as_service(&node, publisher, |core| {
            core.multicast(Handle(0x42), 7, body.clone(), &dests)
        });
        assert_eq!(delivered, 3, "the handle that is gone is skipped");
        for &sub in &subscribers {
            let got = drain(&node, sub);
            assert_eq!(got.len(), 1);
            let message = &got[0];
            assert_eq!(
                (message.source, message.session, message.ptype),
                (Handle(0x42), 7, ptype::MULTICAST as u8)
            );
            let Body::Shared(bytes) = &message.data else {
                panic!("a multicast body is shared, not copied");
            };
            assert!(
                Arc::ptr_eq(bytes, &body),
                "every mailbox holds the one copy"
            );
        }
        assert!(
            !expects_answer(ptype::MULTICAST as u8),
            "nothing answers a multicast"
        );
        assert!(
            is_request(ptype::MULTICAST as u8),
            "nor is it an answer (an upgrade's stale-reply filter lets it through)"
        );
        let guest = quiet_in(&node, "guest", "guest");
        let capable = as_service(&node, guest, |core| core.capabilities.redirect);
        assert!(
            !capable,
            "an untrusted tenant may not multicast (the import checks this)"
        );
    }

    #[test]
    fn every_signal_number_is_stored_and_taken_once() {
        let config = crate::config::NodeConfig::from_source("t", "").unwrap();
        let tenants = crate::tenant::tenants_from_specs(config.tenants);
        let service = Service::new(Handle(1), "m", "", tenants.node().clone());
        assert_eq!(service.take_signal(), None);
        for signal in [0, 1, -1, i32::MAX, i32::MIN] {
            service.ask_signal(signal);
            assert_eq!(service.take_signal(), Some(signal));
            assert_eq!(service.take_signal(), None);
        }
        // A later signal replaces one not delivered yet, and leaves the other bits alone.
        service.mark_dead();
        service.ask_signal(3);
        service.ask_signal(4);
        assert_eq!(service.take_signal(), Some(4));
        assert!(!service.is_alive());
        assert!(!service.pending().has(Bits::SIGNAL));
    }
}
