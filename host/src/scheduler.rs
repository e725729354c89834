//! Workers and the global queue (skynet's `thread_worker` in `skynet_start.c` and
//! `skynet_context_message_dispatch` in `skynet_server.c`).
//!
//! Each worker takes a ready service queue from the global queue and dispatches a batch of
//! its messages, sized by the worker's weight as skynet does (weight -1: one message;
//! weight w: the queue length >> w), then moves on to the next ready queue, putting the
//! current one back only when another is waiting. Unlike skynet, a node of two to four
//! workers gives its last worker weight 0 (see `weight_of`).
//!
//! The next slot: when a worker's current message makes another queue ready (a request to
//! an idle service, a reply to a waiting caller), that queue goes to the worker's *next
//! slot* instead of the global queue, and the worker runs it right after the current batch,
//! on the same warm core, without touching the global queue. A queue displaced from the slot
//! goes to the global queue. While other queues wait globally, a worker takes from its slot
//! at most `NEXT_BUDGET` (16) times in a row, so a chatty pair cannot starve them.
//!
//! Tenants: the global queue serves the tenants' ready queues round robin, and a tenant with
//! a worker cap (untrusted tenants: one worker less than the node has, by default) never has
//! more of its services running at once than its cap, counting next-slot picks too, so a
//! tenant flooding or looping in many services cannot take every worker. A worker *holds*
//! the capped tenant of the service it runs and gives it back when it moves on.
//!
//! Sleeping and waking: a worker that finds nothing looks again for 50 µs while another
//! worker runs, then sleeps on a condvar (in a fan-in, sleeping at once made the workers
//! wake each other for every message: 0.44 of skynet's calls/s against 0.80 with the
//! look); when every worker is idle it sleeps at once, leaving the CPU to the timer and
//! socket threads that bring the next work. Waking a
//! sleeper costs a futex syscall (microseconds), so a push wakes one only when the work
//! needs another worker: a queue pushed to the global queue by a worker (the worker itself
//! will be busy with its next slot) or by another thread (timer, sockets, embedders). Every
//! 2.5 ms the timer thread moves the next slot of a worker that made no progress (stuck in a
//! long message) to the global queue, and wakes a sleeper if ready queues waited the whole
//! period without any worker taking one.
//!
//! The network assist (opt-in, `network_assist = true`): the network thread delivering
//! cluster messages has a slot of its own and, when every worker sleeps, runs the trusted
//! services it made ready itself rather than waking a worker for them
//! (`with_network_assist`).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::mq::{GlobalQueue, Message, Popped};
use skywasm_abi::Handle;

use crate::lifecycle::work::Bits;
use crate::service::{Behavior, Fault, Service};
use crate::sync::lock;

/// Native stack of a thread that runs guest code: every level of launch nesting may use
/// wasmtime's wasm stack (512 KiB) plus the host frames between two levels, with room to
/// spare (`tests/blackbox/hostile.rs` runs the deepest nesting at full wasm stack).
pub const WORKER_STACK: usize = 32 << 20;

/// skynet's worker weights by index: -1 = one message per turn, w = queue length >> w.
const WEIGHTS: [i32; 32] = [
    -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
    3, 3,
];

/// The first worker of weight 0 in skynet's table.
const FIRST_DRAINING: usize = 4;

/// The weight of worker `index` of `workers`: skynet's table, then 0 (the whole queue) past
/// its end — except that a node of fewer than five workers, which skynet's table leaves
/// without a worker of weight 0, gives its last worker weight 0 (skywasm's difference).
/// Without one, every message of a busy service is a turn of its own, and its instance
/// moves between the workers with nearly every message: the 1,000-client fan-in ran at
/// 0.91 of skynet's calls/s with skynet's weights and 1.40 with this one on 2 workers
/// (BENCHMARKS.md).
fn weight_of(index: usize, workers: usize) -> i32 {
    if workers > 1 && workers <= FIRST_DRAINING && index == workers - 1 {
        return 0;
    }
    WEIGHTS.get(index).copied().unwrap_or(0)
}

/// How many messages a turn delivers, decided after its first pop left `queued` behind:
/// skynet's `n = length >> weight` (weight -1: just the one), at least the one taken, and
/// no more than [`ASSIST_BATCH`] for the network thread's assist.
fn batch_size(weight: i32, queued: usize, assist: bool) -> usize {
    if weight < 0 {
        return 1;
    }
    let batch = (queued >> weight).max(1);
    if assist {
        batch.min(ASSIST_BATCH)
    } else {
        batch
    }
}

/// How long a worker that ran out of work keeps looking, while another worker runs, before
/// it sleeps: a sleeper costs whoever brings the next work a futex wake-up and itself a
/// trip through the kernel's scheduler (tens of microseconds on a virtual machine), and
/// while other workers run new work usually comes within microseconds (a reply, the next
/// request of a fan-in).
const IDLE_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Consecutive next-slot picks allowed while other queues wait in the global queue.
const NEXT_BUDGET: u32 = 16;

thread_local! {
    /// The index of the worker running on this thread, if it is a worker thread.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
    /// Queues this thread made ready, for sampling one in [`SAMPLE_EVERY`].
    static READIED: Cell<usize> = const { Cell::new(0) };
}

/// One message (and one ready queue) in this many is timed.
const SAMPLE_EVERY: usize = crate::metrics::SAMPLE_EVERY;

/// A slot holding at most one ready service, moved in and out with single atomic swaps.
#[derive(Default)]
struct NextSlot(AtomicPtr<Service>);

impl NextSlot {
    /// Puts `service` in the slot; returns what was there.
    fn replace(&self, service: Arc<Service>) -> Option<Arc<Service>> {
        let old = self
            .0
            .swap(Arc::into_raw(service).cast_mut(), Ordering::AcqRel);
        Self::own(old)
    }

    /// Empties the slot.
    fn take(&self) -> Option<Arc<Service>> {
        if self.0.load(Ordering::Relaxed).is_null() {
            return None;
        }
        Self::own(self.0.swap(std::ptr::null_mut(), Ordering::AcqRel))
    }

    fn is_empty(&self) -> bool {
        self.0.load(Ordering::Acquire).is_null()
    }

    fn own(pointer: *mut Service) -> Option<Arc<Service>> {
        // SAFETY: every non-null pointer in the slot came from `Arc::into_raw` in `replace`,
        // and a swap hands it to exactly one caller, which takes back that reference.
        (!pointer.is_null()).then(|| unsafe { Arc::from_raw(pointer) })
    }
}

impl Drop for NextSlot {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// A worker's next slot and progress counter, padded so workers do not share cache lines.
#[repr(align(128))]
#[derive(Default)]
struct WorkerSlot {
    next: NextSlot,
    /// Messages this worker dispatched.
    progress: AtomicUsize,
    /// `progress` at the previous timer check.
    progress_at_last_tick: AtomicUsize,
}

/// The global queue plus the sleep/wake state of the workers.
pub struct Scheduler {
    global: GlobalQueue<Arc<Service>>,
    slots: Vec<WorkerSlot>,
    sleepers: AtomicUsize,
    /// Workers in [`Scheduler::idle`]: looking for work or sleeping.
    idle: AtomicUsize,
    sleep_lock: Mutex<()>,
    wakeup: Condvar,
    workers: usize,
    stopped: AtomicBool,
    /// Queues taken from the global queue, for the timer's progress check.
    taken: AtomicUsize,
    /// `taken` at the previous timer check.
    taken_at_last_tick: AtomicUsize,
    /// The message path's sampled timings (schedule delay, dispatch time).
    pub timings: crate::metrics::Timings,
}

impl Scheduler {
    /// A scheduler for `workers` worker threads and one scheduling class per entry of
    /// `caps`: the most workers that may run the class's services at once
    /// ([`crate::mq::UNCAPPED`] for no cap).
    pub fn new(workers: usize, caps: &[usize]) -> Scheduler {
        Scheduler {
            global: GlobalQueue::with_caps(caps),
            // One slot per worker, and one for the network thread's assist.
            slots: (0..=workers).map(|_| WorkerSlot::default()).collect(),
            sleepers: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wakeup: Condvar::new(),
            workers,
            stopped: AtomicBool::new(false),
            taken: AtomicUsize::new(0),
            taken_at_last_tick: AtomicUsize::new(0),
            timings: crate::metrics::Timings::default(),
        }
    }

    /// Schedules a service whose queue just became ready: into the calling worker's next
    /// slot, or the global queue.
    pub fn ready(&self, service: Arc<Service>) {
        let displaced = match WORKER.get().and_then(|index| self.slots.get(index)) {
            Some(slot) => slot.next.replace(service),
            None => Some(service),
        };
        if let Some(service) = displaced {
            self.push_global(service);
        }
    }

    /// Marks one queue in [`SAMPLE_EVERY`] that enters the global queue with the time, for
    /// the schedule delay the worker taking it records: a counter of this thread's, no
    /// atomic read-modify-write. Only the global queue is sampled: that is where a ready
    /// service waits for a worker; a next-slot hand-off runs right after the current turn
    /// and costs the message path nothing here.
    fn sample_ready(&self, service: &Service) {
        let readied = READIED.get().wrapping_add(1);
        READIED.set(readied);
        if readied % SAMPLE_EVERY == 0 {
            service
                .ready_at
                .store(self.timings.now(), Ordering::Relaxed);
        }
    }

    /// Records the schedule delay of a queue a worker just took, if it was sampled.
    fn took(&self, service: &Service) {
        let since = service.ready_at.load(Ordering::Relaxed);
        if since != 0 {
            service.ready_at.store(0, Ordering::Relaxed);
            self.timings.waited_since(since);
        }
    }

    /// Puts a ready service in the global queue and wakes a sleeper for it.
    fn push_global(&self, service: Arc<Service>) {
        self.sample_ready(&service);
        if self.global.push(service.class(), service) > 0
            && self.sleepers.load(Ordering::SeqCst) > 0
        {
            self.wake_one();
        }
    }

    /// Called after `service`'s queue left the global queue: work asked for while it was
    /// held found it scheduled and was left to the holder, which may have looked before it
    /// came — schedule it again so it is not forgotten ([`crate::lifecycle::work`]).
    fn reschedule_if_owed(&self, service: &Arc<Service>) {
        if service.reschedule_if_owed() {
            self.push_global(service.clone());
        }
    }

    /// Number of ready service queues a worker may take now.
    pub fn ready_len(&self) -> usize {
        self.global.len()
    }

    /// Number of sleeping workers.
    pub fn sleeping(&self) -> usize {
        self.sleepers.load(Ordering::SeqCst)
    }

    /// The timer thread's periodic check: ready queues must not keep waiting while a worker
    /// sleeps and no awake worker takes them.
    pub fn tick(&self) {
        for slot in &self.slots {
            let progress = slot.progress.load(Ordering::Relaxed);
            if slot.progress_at_last_tick.swap(progress, Ordering::Relaxed) == progress {
                if let Some(service) = slot.next.take() {
                    self.push_global(service);
                }
            }
        }
        let taken = self.taken.load(Ordering::Relaxed);
        let stalled = self.taken_at_last_tick.swap(taken, Ordering::Relaxed) == taken;
        if stalled && !self.global.is_empty() && self.sleepers.load(Ordering::SeqCst) > 0 {
            self.wake_one();
        }
    }

    /// Takes the next ready queue for a worker: its next slot first (within the budget while
    /// others wait, and if the service's tenant is below its worker cap), then the global
    /// queue. The worker holds the capped tenant of what it takes.
    fn take(&self, turn: &mut Turn) -> Option<Arc<Service>> {
        if turn.assist {
            return self.take_for_assist(turn);
        }
        if let Some(slot) = self.slots.get(turn.worker) {
            let fair = turn.streak < NEXT_BUDGET || self.global.is_empty();
            if let Some(service) = slot.next.take() {
                if fair && self.hold(turn, service.class()) {
                    turn.streak += 1;
                    return Some(service);
                }
                self.global.push(service.class(), service);
            }
        }
        turn.streak = 0;
        let freed = self.release_held(turn);
        let (class, service) = self.global.pop()?;
        self.took(&service);
        self.taken.fetch_add(1, Ordering::Relaxed);
        if self.global.is_capped(class) {
            turn.held = Some(class);
        }
        // Entries the release made takeable may need another worker than this one.
        if freed && !self.global.is_empty() && self.sleepers.load(Ordering::SeqCst) > 0 {
            self.wake_one();
        }
        Some(service)
    }

    /// The network thread's take: only from its own slot, and never a capped tenant's
    /// service (untrusted code runs on workers only) nor one with an init or upgrade to run
    /// (those can take long: compiling, starting).
    fn take_for_assist(&self, turn: &Turn) -> Option<Arc<Service>> {
        let service = self.slots.get(turn.worker)?.next.take()?;
        if self.global.is_capped(service.class())
            || service.pending().has(Bits::START.or(Bits::UPGRADE))
            || !service.assistable()
        {
            self.push_global(service);
            return None;
        }
        Some(service)
    }

    /// Makes the worker hold `class` (for a service it takes from its next slot); false
    /// when the class is capped and at its cap.
    fn hold(&self, turn: &mut Turn, class: usize) -> bool {
        if turn.held == Some(class) {
            return true;
        }
        if self.global.is_capped(class) {
            if !self.global.try_acquire(class) {
                return false;
            }
            self.release_held(turn);
            turn.held = Some(class);
        } else {
            self.release_held(turn);
        }
        true
    }

    /// Gives back the capped class the worker holds; true when that made ready queues
    /// takeable.
    fn release_held(&self, turn: &mut Turn) -> bool {
        turn.held
            .take()
            .is_some_and(|class| self.global.release(class))
    }

    /// True when worker `index` has a queue in its next slot or ready queues wait globally.
    fn has_work(&self, index: usize) -> bool {
        !self.global.is_empty()
            || self
                .slots
                .get(index)
                .is_some_and(|slot| !slot.next.is_empty())
    }

    fn wake_one(&self) {
        let _guard = lock(&self.sleep_lock);
        self.wakeup.notify_one();
    }

    /// Stops every worker after its current message.
    pub fn stop(&self) {
        let _guard = lock(&self.sleep_lock);
        self.stopped.store(true, Ordering::SeqCst);
        self.wakeup.notify_all();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Empties the global queue and the next slots (after the workers stopped).
    pub(crate) fn drain(&self) {
        self.global.drain();
        for slot in &self.slots {
            drop(slot.next.take());
        }
    }

    /// Waits for work: looks for it for [`IDLE_SPIN`] while another worker runs, then
    /// sleeps until woken.
    fn idle(&self, index: usize) {
        self.idle.fetch_add(1, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + IDLE_SPIN;
        loop {
            if self.has_work(index) || self.is_stopped() {
                self.idle.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            // Work comes soon only while another worker runs. With every worker idle it
            // comes from the timer or the sockets, and looking would take their threads'
            // CPU (two harbor nodes on two cores: sequential calls fell to a quarter).
            if self.idle.load(Ordering::SeqCst) >= self.workers
                || std::time::Instant::now() >= deadline
            {
                break;
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
        let guard = crate::sync::lock_plain(&self.sleep_lock);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // Re-check after announcing the sleep: a push either sees the sleeper or is seen here.
        if self.global.is_empty() && !self.is_stopped() {
            let _guard = self
                .wakeup
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        self.idle.fetch_sub(1, Ordering::SeqCst);
    }

    /// True when the services of scheduling class `class` (a tenant's index) run under a
    /// worker cap.
    pub fn is_capped(&self, class: usize) -> bool {
        self.global.is_capped(class)
    }
}

/// What the workers need of the node around the services they run. The worker loop is
/// written against it, so it knows neither the node's other parts nor the cluster; the
/// node implements it (on `Arc<NodeShared>`); `worker_tests` drives it with a host of its
/// own, without a node.
pub(crate) trait Host {
    /// The scheduler the workers take services from.
    fn scheduler(&self) -> &Scheduler;
    /// Whether the network thread may run trusted services (`network_assist`).
    fn network_assist(&self) -> bool;
    /// Whether CPU time per message is measured (`profile`).
    fn profile(&self) -> bool;
    /// `worker` starts a message from `source` to `dest` (the endless-loop watch).
    fn enter(&self, worker: usize, source: Handle, dest: Handle);
    /// `worker` is done with its message.
    fn leave(&self, worker: usize);
    /// A host log line with `source` as its origin.
    fn log(&self, source: Handle, text: &str);
    /// Ends `service` after `fault`, saying `what` it was doing.
    fn fault(&self, service: &Service, fault: &Fault, what: &str);
    /// Finishes an ended service: its callers get errors, its queue is closed.
    fn finalize(&self, service: &Arc<Service>);
    /// Stops the node on a fatal host error.
    fn fail(&self, why: &str);
    /// Runs the init of a service whose start was left to a worker.
    fn start_deferred(&self, service: &Arc<Service>);
    /// Runs an upgrade asked for `service`, between two of its messages.
    fn upgrade(&self, service: &Arc<Service>);
    /// Whether `behavior` is to see `message`, noting what that obliges it to (a request
    /// it owes an answer to) and when its handling started (thread CPU nanoseconds, with
    /// `profile`); false for a message it must not see.
    fn admit(&self, behavior: &mut dyn Behavior, message: &Message, started: Option<u64>) -> bool;
    /// Writes `message` to the service's message log, if it has one on (`logon`).
    fn record_message(&self, service: &Service, message: &Message);
    /// Runs one message's dispatch (what it writes to cluster connections goes out
    /// together when it is done).
    fn around_dispatch<R>(&self, dispatch: impl FnOnce() -> R) -> R;
}

/// A worker thread's loop.
pub(crate) fn run_worker<H: Host>(host: &H, index: usize) {
    WORKER.set(Some(index));
    let mut turn = Turn {
        worker: index,
        weight: weight_of(index, host.scheduler().workers),
        streak: 0,
        held: None,
        assist: false,
        until: None,
    };
    let mut current: Option<Arc<Service>> = None;
    while !host.scheduler().is_stopped() {
        current = dispatch_turn(host, current, &mut turn);
        if current.is_none() {
            host.scheduler().idle(index);
        }
    }
    WORKER.set(None);
}

/// A worker's identity, its next-slot streak and the capped tenant it holds.
struct Turn {
    worker: usize,
    weight: i32,
    streak: u32,
    /// The capped scheduling class of the service this worker runs, counted against the
    /// class's cap until the worker moves on.
    held: Option<usize>,
    /// The network thread's assist rather than a worker.
    assist: bool,
    /// When the assist must stop taking messages.
    until: Option<std::time::Instant>,
}

impl Turn {
    /// True when an assist's time is up.
    fn out_of_time(&self) -> bool {
        self.until
            .is_some_and(|until| std::time::Instant::now() >= until)
    }
}

/// Most queues the network thread runs in one assist.
const ASSIST_TURNS: usize = 8;

/// Most messages of one queue the network thread runs in one turn.
const ASSIST_BATCH: usize = 64;

/// Time the network thread may spend running services in one assist: it takes no further
/// message past it. A service whose messages alone took longer [`ASSIST_STRIKES`] times is
/// never run there again (its messages go to the workers), so a heavy handler holds the
/// sockets at most that many times, while one slow first message (page faults of a fresh
/// instance) does not cost a service the assist.
pub(crate) const ASSIST_BUDGET: std::time::Duration = std::time::Duration::from_micros(500);

/// Overruns of [`ASSIST_BUDGET`] after which a service is no longer run by the assist.
pub(crate) const ASSIST_STRIKES: u8 = 3;

/// Runs `deliver` (the network thread handing what it read to services) so that the
/// services it makes ready wait in the network thread's own slot; then, if every worker
/// sleeps, runs them right here — up to [`ASSIST_BATCH`] messages per turn, following the
/// slot (a request, then `clusterd` writing its answer), up to [`ASSIST_TURNS`] turns —
/// instead of waking a worker, which costs tens of microseconds on a virtual machine.
/// Whatever is left, or everything when a worker is awake, goes to the global queue
/// (waking a worker as usual). Only trusted tenants' services run here, never an init or
/// an upgrade, and only within [`ASSIST_BUDGET`] (only with `network_assist = true`).
pub(crate) fn with_network_assist<H: Host, R>(host: &H, deliver: impl FnOnce() -> R) -> R {
    if WORKER.get().is_some() || !host.network_assist() {
        return deliver();
    }
    let scheduler = host.scheduler();
    let index = scheduler.workers;
    WORKER.set(Some(index));
    let result = deliver();
    let mut turn = Turn {
        worker: index,
        weight: 0,
        streak: 0,
        held: None,
        assist: true,
        until: Some(std::time::Instant::now() + ASSIST_BUDGET),
    };
    let mut current = None;
    for _ in 0..ASSIST_TURNS {
        let unfit = current
            .as_ref()
            .is_some_and(|s: &Arc<Service>| s.pending().has(Bits::UPGRADE) || !s.assistable());
        if unfit
            || turn.out_of_time()
            || scheduler.sleeping() < scheduler.workers
            || scheduler.is_stopped()
        {
            break;
        }
        current = dispatch_turn(host, current, &mut turn);
        if current.is_none() && scheduler.slots[index].next.is_empty() {
            break;
        }
    }
    WORKER.set(None);
    if let Some(service) = current {
        scheduler.push_global(service);
    }
    if let Some(service) = scheduler.slots[index].next.take() {
        scheduler.push_global(service);
    }
    result
}

/// One turn: a batch of messages from `current` (or the next ready queue); returns the queue
/// to continue with. A panic in host code while serving the service ends that service as a
/// fault and the worker goes on ([`contain_panic`]).
fn dispatch_turn<H: Host>(
    host: &H,
    current: Option<Arc<Service>>,
    turn: &mut Turn,
) -> Option<Arc<Service>> {
    let service = current.or_else(|| host.scheduler().take(turn))?;
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serve_turn(host, &service, turn)
    }));
    match served {
        Ok(Turned::Again) => Some(service),
        Ok(Turned::Done(next)) => next,
        Ok(Turned::Requeue(next)) => {
            host.scheduler().push_global(service);
            next
        }
        Err(payload) => {
            contain_panic(host, &service, turn, &*payload);
            host.scheduler().take(turn)
        }
    }
}

/// How a turn left its service (so the turn borrows the service, and the owner moves it
/// on without touching its reference count).
enum Turned {
    /// The worker carries on with it.
    Again,
    /// It left the worker (empty, ended or handed on); the worker goes on with this.
    Done(Option<Arc<Service>>),
    /// It goes back to the global queue; the worker goes on with this.
    Requeue(Option<Arc<Service>>),
}

/// After a panic while `service` was served: the service ends as a fault (its callers get
/// errors, its queue is closed) and the log says so with its name. If the panic unwound
/// through a lock of the node's shared state, that state may be half-changed: the node
/// stops, saying why, instead of running on it.
fn contain_panic<H: Host>(
    host: &H,
    service: &Arc<Service>,
    turn: &Turn,
    payload: &(dyn std::any::Any + Send),
) {
    let shared_state_unknown = crate::sync::take_poisoned();
    if !turn.assist {
        host.leave(turn.worker);
    }
    let fault = Fault::HostPanic(crate::sync::panic_text(payload));
    service.end_call();
    host.fault(service, &fault, "was being served when the host panicked");
    host.finalize(service);
    if shared_state_unknown {
        host.fail(&format!(
            "a host panic while serving {} left shared state unknown ({})",
            service.handle(),
            fault
        ));
    }
}

/// The body of [`dispatch_turn`] for the service it took.
fn serve_turn<H: Host>(host: &H, service: &Arc<Service>, turn: &mut Turn) -> Turned {
    let scheduler = host.scheduler();
    let (worker, weight) = (turn.worker, turn.weight);
    match serve_asked(host, service, turn.assist) {
        Asked::Served => {}
        Asked::Ended => return Turned::Done(scheduler.take(turn)),
        Asked::ForWorkers => return Turned::Requeue(scheduler.take(turn)),
    }
    let mut batch = 1;
    let mut done = 0;
    while done < batch {
        let Some(Popped {
            message,
            left,
            overload,
        }) = service.queue.pop_for_turn()
        else {
            scheduler.reschedule_if_owed(service);
            return Turned::Done(scheduler.take(turn));
        };
        if done == 0 {
            batch = batch_size(weight, left, turn.assist);
        }
        if let Some(len) = overload {
            host.log(
                service.handle(),
                &format!("May overload, message queue length = {len}"),
            );
        }
        // The worker's own message count picks the messages whose dispatch is timed.
        let slot = scheduler.slots.get(worker);
        let progress = slot.map_or(1, |slot| slot.progress.load(Ordering::Relaxed));
        let timed = (progress % SAMPLE_EVERY == 0).then(std::time::Instant::now);
        dispatch_message(host, service, message, worker, turn.assist);
        if let Some(started) = timed {
            scheduler
                .timings
                .dispatch
                .observe(started.elapsed().as_secs_f64());
        }
        service.wake_sockets_if_drained();
        if let Some(slot) = slot {
            slot.progress
                .store(progress.wrapping_add(1), Ordering::Relaxed);
        }
        // Work asked meanwhile (an end, a signal, an upgrade) comes before the next message.
        match serve_asked(host, service, turn.assist) {
            Asked::Served => {}
            Asked::Ended => return Turned::Done(scheduler.take(turn)),
            Asked::ForWorkers => break,
        }
        if turn.out_of_time() || turn.assist && !service.assistable() {
            break;
        }
        done += 1;
    }
    // An emptied queue leaves global now rather than bouncing through the global queue.
    if service.queue.release_if_empty() {
        scheduler.reschedule_if_owed(service);
        return Turned::Done(scheduler.take(turn));
    }
    match scheduler.take(turn) {
        Some(next) => Turned::Requeue(Some(next)),
        // Nothing else is ready: carry on with this one if its tenant still has room (the
        // take gave back what the worker held).
        None if scheduler.hold(turn, service.class()) => Turned::Again,
        None => Turned::Requeue(None),
    }
}

/// What [`serve_asked`] left of a service.
enum Asked {
    /// Its messages may be delivered.
    Served,
    /// It ended and was finalized.
    Ended,
    /// It has work the network thread's assist does not do (an upgrade): it goes to the
    /// workers.
    ForWorkers,
}

/// Does the work asked of the holder of `service`'s queue, in this order: its deferred
/// init, an upgrade, the end (finalizing it), a signal. One load of its word when nothing
/// is asked, which is the message path's case.
fn serve_asked<H: Host>(host: &H, service: &Arc<Service>, assist: bool) -> Asked {
    let work = service.pending();
    if work.is_quiet() {
        return Asked::Served;
    }
    if work.has(Bits::START) && service.is_alive() {
        host.start_deferred(service);
    }
    if work.has(Bits::UPGRADE) && service.is_alive() {
        if assist {
            return Asked::ForWorkers;
        }
        host.upgrade(service);
    }
    if !service.is_alive() {
        host.finalize(service);
        return Asked::Ended;
    }
    if work.has(Bits::SIGNAL) {
        if let Some(signal) = service.take_signal() {
            if let Some(behavior) = service.instance().as_mut() {
                run_signal(host, service, behavior, signal);
            }
        }
        if !service.is_alive() {
            host.finalize(service);
            return Asked::Ended;
        }
    }
    Asked::Served
}

/// Delivers one message to a service's instance (`assisted`: on the network thread).
fn dispatch_message<H: Host>(
    host: &H,
    service: &Arc<Service>,
    message: Message,
    worker: usize,
    assisted: bool,
) {
    let mut slot = service.instance();
    let Some(behavior) = slot.as_mut() else {
        return;
    };
    let started = host.profile().then(crate::clock::thread_cpu_ns);
    if !host.admit(&mut **behavior, &message, started) {
        return;
    }
    host.record_message(service, &message);
    // Only the worker holding the queue writes this counter: a plain store suffices.
    let count = service.stats.messages.load(Ordering::Relaxed) + 1;
    service.stats.messages.store(count, Ordering::Relaxed);
    host.enter(worker, message.source, service.handle());
    let (ptype, source, session) = (message.ptype, message.source, message.session);
    // Frames the message writes to cluster connections go out together when it is done.
    let assist_started = assisted.then(std::time::Instant::now);
    let (result, interrupted) =
        host.around_dispatch(|| service.run_call(|| behavior.dispatch(message)));
    if let Some(took) = assist_started.map(|started| started.elapsed()) {
        if took > ASSIST_BUDGET {
            let overruns = service.note_assist_overrun();
            if overruns == ASSIST_STRIKES {
                host.log(
                    service.handle(),
                    &format!(
                        "{overruns} messages ran past the network thread's budget of {} us \
                         there (the last: {} us): this service runs on the workers only now",
                        ASSIST_BUDGET.as_micros(),
                        took.as_micros()
                    ),
                );
            }
        }
    }
    if let Some(started) = started {
        let spent = crate::clock::thread_cpu_ns().saturating_sub(started);
        service.stats.cpu_ns.fetch_add(spent, Ordering::Relaxed);
    }
    host.leave(worker);
    if let Err(fault) = result {
        drop(slot);
        let what = if interrupted {
            "was stopped while running a message (KILL, SIGNAL 0 or the node stopping)".to_string()
        } else {
            format!("faulted on a message (type {ptype}, from {source}, session {session})")
        };
        host.fault(service, &fault, &what);
    }
}

/// Runs a service's signal entry, ending the service if it faults.
fn run_signal<H: Host>(host: &H, service: &Service, behavior: &mut Box<dyn Behavior>, signal: i32) {
    let (result, interrupted) = service.run_call(|| behavior.signal(signal));
    if let Err(fault) = result {
        let what = if interrupted {
            format!("was stopped while handling signal {signal}")
        } else {
            format!("faulted on signal {signal}")
        };
        host.fault(service, &fault, &what);
    }
}

/// Dispatches everything left in a queue on the calling thread (used to flush the log
/// service at shutdown).
pub(crate) fn drain_queue(service: &Arc<Service>) {
    // A worker abandoned at stop may hold it: then its queue is left.
    let Some(mut slot) = service.try_instance() else {
        return;
    };
    if let Some(behavior) = slot.as_mut() {
        while let Some(message) = service.queue.pop() {
            if behavior.dispatch(message).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod worker_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::mq::UNCAPPED;
    use skywasm_abi::Handle;

    /// Makes `service` (a new one: its queue is held from creation) ready as the network
    /// thread does while delivering.
    fn ready_on_network_thread(scheduler: &Scheduler, service: &Arc<Service>) {
        WORKER.set(Some(scheduler.workers));
        scheduler.ready(service.clone());
        WORKER.set(None);
    }

    #[test]
    fn turns_are_sized_by_the_workers_weight_as_in_skynet() {
        // Workers 0-3 take one message per turn, 4-7 the whole queue, 8-15 half of it,
        // 16-23 a quarter, 24-31 an eighth, and any further worker the whole queue (a node
        // of 32 workers or more).
        let expected = [
            (0, -1),
            (3, -1),
            (4, 0),
            (7, 0),
            (8, 1),
            (15, 1),
            (16, 2),
            (24, 3),
        ];
        for (index, weight) in expected {
            assert_eq!(weight_of(index, 40), weight, "worker {index}");
        }
        assert_eq!(weight_of(31, 40), 3);
        assert_eq!(weight_of(32, 40), 0);
        // A node of two to four workers drains with its last one (skywasm); one of one
        // worker, or of five and more, has skynet's weights.
        assert_eq!((0..2).map(|i| weight_of(i, 2)).collect::<Vec<_>>(), [-1, 0]);
        assert_eq!(
            (0..4).map(|i| weight_of(i, 4)).collect::<Vec<_>>(),
            [-1, -1, -1, 0]
        );
        assert_eq!(weight_of(0, 1), -1);
        assert_eq!(
            (0..5).map(|i| weight_of(i, 5)).collect::<Vec<_>>(),
            [-1, -1, -1, -1, 0]
        );
        assert_eq!(batch_size(-1, 1000, false), 1);
        assert_eq!(batch_size(0, 1000, false), 1000);
        assert_eq!(batch_size(1, 1000, false), 500);
        assert_eq!(batch_size(3, 1000, false), 125);
        // The message already taken is delivered even when nothing is left behind it.
        assert_eq!(batch_size(0, 0, false), 1);
        assert_eq!(batch_size(2, 3, false), 1);
        assert_eq!(batch_size(0, 1000, true), ASSIST_BATCH.min(1000));
    }

    #[test]
    fn the_network_assist_runs_trusted_quick_services_only_and_never_an_init() {
        let config =
            NodeConfig::from_source("t", "thread = 2\ntenants = { rogue = { workers = 1 } }")
                .unwrap();
        let tenants = crate::tenant::tenants_from_specs(config.tenants);
        let rogue = tenants.get("rogue").unwrap().clone();
        assert!(!rogue.is_trusted());
        let scheduler = Scheduler::new(2, &[UNCAPPED, 1]);
        let service = |handle, tenant| Arc::new(Service::new(Handle(handle), "m", "", tenant));
        let trusted = service(1, tenants.node().clone());
        let untrusted = service(2, rogue);
        let starting = service(3, tenants.node().clone());
        assert!(!starting.ask(Bits::START), "a new queue is held");
        let slow = service(4, tenants.node().clone());
        for _ in 0..ASSIST_STRIKES {
            slow.note_assist_overrun();
        }
        let mut turn = Turn {
            worker: scheduler.workers,
            weight: 0,
            streak: 0,
            held: None,
            assist: true,
            until: None,
        };
        for (refused, what) in [
            (&untrusted, "an untrusted tenant's"),
            (&starting, "an init"),
            (&slow, "a slow"),
        ] {
            ready_on_network_thread(&scheduler, refused);
            assert!(
                scheduler.take(&mut turn).is_none(),
                "{what} service was taken"
            );
        }
        // They went to the workers instead.
        assert_eq!(scheduler.ready_len(), 3);
        ready_on_network_thread(&scheduler, &trusted);
        let taken = scheduler
            .take(&mut turn)
            .expect("the trusted service is taken");
        assert!(Arc::ptr_eq(&taken, &trusted));
        assert_eq!(
            scheduler.ready_len(),
            3,
            "the assist takes from its slot only"
        );
    }

    #[test]
    fn work_asked_for_while_a_queue_was_held_is_not_forgotten_when_it_empties() {
        let config = NodeConfig::from_source("t", "thread = 2").unwrap();
        let tenants = crate::tenant::tenants_from_specs(config.tenants);
        let scheduler = Scheduler::new(2, &[UNCAPPED]);
        let service = Arc::new(Service::new(Handle(1), "m", "", tenants.node().clone()));
        // Held (a new queue is), empty, nothing owed: it leaves and stays out.
        assert!(service.queue.release_if_empty());
        scheduler.reschedule_if_owed(&service);
        assert_eq!(scheduler.ready_len(), 0);
        // Held again; an upgrade is asked for (its `schedule` found the queue held).
        assert!(service.queue.schedule());
        assert!(!service.ask(Bits::UPGRADE));
        assert!(service.queue.release_if_empty());
        scheduler.reschedule_if_owed(&service);
        assert_eq!(scheduler.ready_len(), 1, "the upgrade was forgotten");
    }
}
