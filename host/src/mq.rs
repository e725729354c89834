//! Message queues (skynet's `skynet_mq.c`): one FIFO per service and the global queue of
//! service queues that have messages.
//!
//! Invariant (skynet's `MQ_IN_GLOBAL`): a service queue is *in global* from the moment a push
//! makes it non-empty until a pop finds it empty. While it is in global it is either waiting
//! in the [`GlobalQueue`] exactly once or held by exactly one worker, so one service never
//! runs on two threads at once and a queue never sits in the global queue twice. Only the
//! push that flips the flag (it returns [`Push::Ready`]) puts the queue into the global queue.
//!
//! Nothing here knows about wasm or tokio; the module is tested on its own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use skywasm_abi::Handle;

use crate::sync::lock;

/// First queue length that logs an overload warning (skynet's `MQ_OVERLOAD`).
pub const OVERLOAD_THRESHOLD: usize = 1024;

/// One message in flight. The host owns the bytes between the sender's and receiver's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sending service (or [`Handle::NONE`] for the system: timers, the host itself).
    pub source: Handle,
    /// 0 for a one-way message, otherwise the session the reply must carry.
    pub session: i32,
    /// The message type (skynet's `PTYPE_*`, 0..=255).
    pub ptype: u8,
    /// The body.
    pub data: Box<[u8]>,
}

impl Message {
    /// A message with an empty body.
    pub fn empty(source: Handle, ptype: u8, session: i32) -> Message {
        Message {
            source,
            session,
            ptype,
            data: Box::default(),
        }
    }
}

/// What a successful push did to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The queue was idle and is now in global: the caller must put it into the global queue.
    Ready,
    /// The queue was already in global (waiting there or held by a worker).
    Queued,
}

/// The mailbox of one service.
#[derive(Debug)]
pub struct MessageQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug)]
struct QueueState {
    messages: VecDeque<Message>,
    in_global: bool,
    /// Set once the service is gone: pushes are refused from then on.
    closed: bool,
    /// A queue length to report as an overload warning, taken by the worker.
    overload: usize,
    overload_threshold: usize,
}

impl Default for MessageQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageQueue {
    /// An idle, empty queue.
    pub fn new() -> Self {
        MessageQueue {
            state: Mutex::new(QueueState {
                messages: VecDeque::new(),
                in_global: false,
                closed: false,
                overload: 0,
                overload_threshold: OVERLOAD_THRESHOLD,
            }),
        }
    }

    /// A queue that starts *held* (in global but not in the global queue), as skynet creates a
    /// service's queue: messages sent to a service during its init wait until
    /// [`MessageQueue::release_hold`].
    pub fn new_held() -> Self {
        let queue = Self::new();
        lock(&queue.state).in_global = true;
        queue
    }

    /// Appends a message.
    ///
    /// # Errors
    /// Returns the message back when the queue is closed (its service has exited).
    pub fn push(&self, message: Message) -> Result<Push, Message> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(message);
        }
        state.messages.push_back(message);
        let len = state.messages.len();
        if len > state.overload_threshold {
            state.overload = len;
            state.overload_threshold *= 2;
        }
        if state.in_global {
            Ok(Push::Queued)
        } else {
            state.in_global = true;
            Ok(Push::Ready)
        }
    }

    /// Takes the oldest message. `None` means the queue is empty and is no longer in global.
    pub fn pop(&self) -> Option<Message> {
        let mut state = lock(&self.state);
        match state.messages.pop_front() {
            Some(message) => Some(message),
            None => {
                state.overload_threshold = OVERLOAD_THRESHOLD;
                state.in_global = false;
                None
            }
        }
    }

    /// Leaves global if the queue is empty (what a `pop` finding nothing does, without
    /// taking a message otherwise). Returns true when it left.
    pub fn release_if_empty(&self) -> bool {
        let mut state = lock(&self.state);
        if state.messages.is_empty() {
            state.overload_threshold = OVERLOAD_THRESHOLD;
            state.in_global = false;
            true
        } else {
            false
        }
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        lock(&self.state).messages.len()
    }

    /// True when no message is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a pending overload report: the queue length that crossed the threshold.
    pub fn take_overload(&self) -> Option<usize> {
        let mut state = lock(&self.state);
        match std::mem::take(&mut state.overload) {
            0 => None,
            len => Some(len),
        }
    }

    /// Ends the hold of [`MessageQueue::new_held`]. Returns true when messages arrived during
    /// the hold: the queue stays in global and the caller must put it into the global queue.
    pub fn release_hold(&self) -> bool {
        let mut state = lock(&self.state);
        debug_assert!(state.in_global);
        if state.messages.is_empty() {
            state.in_global = false;
            false
        } else {
            true
        }
    }

    /// Marks an idle queue in global so a worker will visit it (used to finalize a service
    /// killed while idle, like skynet's `skynet_mq_mark_release`). Returns true when the
    /// caller must put it into the global queue.
    pub fn schedule(&self) -> bool {
        let mut state = lock(&self.state);
        if state.in_global {
            false
        } else {
            state.in_global = true;
            true
        }
    }

    /// Closes the queue and returns what was still in it. Later pushes are refused.
    pub fn close(&self) -> Vec<Message> {
        let mut state = lock(&self.state);
        state.closed = true;
        state.messages.drain(..).collect()
    }

    /// True once [`MessageQueue::close`] ran.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

/// The queue of service queues that have messages (skynet's `global_queue`).
#[derive(Debug)]
pub struct GlobalQueue<T> {
    queue: Mutex<VecDeque<T>>,
    /// Mirrors the length so idle workers and wake-up decisions can look without the lock.
    len: AtomicUsize,
}

impl<T> Default for GlobalQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> GlobalQueue<T> {
    /// An empty global queue.
    pub fn new() -> Self {
        GlobalQueue {
            queue: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Appends a ready service queue; returns the new length.
    pub fn push(&self, item: T) -> usize {
        let mut queue = lock(&self.queue);
        queue.push_back(item);
        let len = queue.len();
        // SeqCst pairs with the sleeper count in the scheduler: a worker that announces it
        // is going to sleep and then reads this length cannot miss a push.
        self.len.store(len, Ordering::SeqCst);
        len
    }

    /// Takes the oldest ready service queue.
    pub fn pop(&self) -> Option<T> {
        if self.len.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut queue = lock(&self.queue);
        let item = queue.pop_front();
        self.len.store(queue.len(), Ordering::SeqCst);
        item
    }

    /// Number of ready service queues.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    /// True when no service queue is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry (used at shutdown).
    pub fn drain(&self) -> Vec<T> {
        let mut queue = lock(&self.queue);
        let items = queue.drain(..).collect();
        self.len.store(0, Ordering::SeqCst);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn msg(source: u32, session: i32) -> Message {
        Message::empty(Handle(source), 0, session)
    }

    #[test]
    fn fifo_order() {
        let q = MessageQueue::new();
        for i in 1..=100 {
            q.push(msg(1, i)).unwrap();
        }
        let sessions: Vec<i32> = std::iter::from_fn(|| q.pop()).map(|m| m.session).collect();
        assert_eq!(sessions, (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn only_the_first_push_into_an_idle_queue_reports_ready() {
        let q = MessageQueue::new();
        assert_eq!(q.push(msg(1, 1)), Ok(Push::Ready));
        assert_eq!(q.push(msg(1, 2)), Ok(Push::Queued));
        assert!(q.pop().is_some());
        assert!(q.pop().is_some());
        assert_eq!(
            q.push(msg(1, 3)),
            Ok(Push::Queued),
            "still held by its worker"
        );
        assert!(q.pop().is_some());
        assert!(q.pop().is_none(), "an empty pop leaves global");
        assert_eq!(q.push(msg(1, 4)), Ok(Push::Ready));
    }

    #[test]
    fn a_held_queue_collects_messages_until_released() {
        let q = MessageQueue::new_held();
        assert_eq!(q.push(msg(1, 1)), Ok(Push::Queued));
        assert!(q.release_hold(), "a message arrived during the hold");
        let q = MessageQueue::new_held();
        assert!(!q.release_hold());
        assert_eq!(q.push(msg(1, 1)), Ok(Push::Ready));
    }

    #[test]
    fn overload_is_reported_at_1024_and_then_doubling() {
        let q = MessageQueue::new();
        let mut reports = Vec::new();
        for i in 0..5000 {
            q.push(msg(1, i)).unwrap();
            if let Some(len) = q.take_overload() {
                reports.push(len);
            }
        }
        assert_eq!(reports, vec![1025, 2049, 4097]);
        while q.pop().is_some() {}
        for i in 0..1100 {
            q.push(msg(1, i)).unwrap();
        }
        assert_eq!(
            q.take_overload(),
            Some(1025),
            "threshold resets once the queue empties"
        );
    }

    #[test]
    fn a_closed_queue_refuses_pushes_and_hands_back_its_messages() {
        let q = MessageQueue::new();
        q.push(msg(1, 1)).unwrap();
        q.push(msg(1, 2)).unwrap();
        let left = q.close();
        assert_eq!(left.len(), 2);
        assert_eq!(q.push(msg(1, 3)).unwrap_err().session, 3);
        assert!(q.is_closed());
    }

    #[test]
    fn release_if_empty_leaves_global_only_when_empty() {
        let q = MessageQueue::new();
        q.push(msg(1, 1)).unwrap();
        assert!(!q.release_if_empty());
        assert_eq!(q.push(msg(1, 2)), Ok(Push::Queued));
        q.pop();
        q.pop();
        assert!(q.release_if_empty());
        assert_eq!(q.push(msg(1, 3)), Ok(Push::Ready));
    }

    #[test]
    fn schedule_marks_only_idle_queues() {
        let q = MessageQueue::new();
        assert!(q.schedule());
        assert!(!q.schedule());
        assert!(q.pop().is_none());
        assert!(q.schedule());
    }

    #[test]
    fn global_queue_is_fifo_and_tracks_its_length() {
        let g = GlobalQueue::new();
        assert_eq!(g.push(1), 1);
        assert_eq!(g.push(2), 2);
        assert_eq!(g.len(), 2);
        assert_eq!(g.pop(), Some(1));
        assert_eq!(g.pop(), Some(2));
        assert_eq!(g.pop(), None);
        assert!(g.is_empty());
    }

    /// Producers send numbered messages to many queues while workers run skynet's loop.
    /// Checks: a queue is never in the global queue twice, never processed by two workers at
    /// once, every message arrives exactly once, and each producer's order is kept per queue.
    #[test]
    fn stress_in_global_invariant_and_per_pair_order() {
        const QUEUES: usize = 16;
        const PRODUCERS: u32 = 4;
        const PER_PRODUCER: i32 = 20_000;
        const WORKERS: usize = 4;

        struct Svc {
            queue: MessageQueue,
            busy: AtomicBool,
            in_global_queue: AtomicUsize,
            seen: Mutex<HashMap<u32, i32>>,
            received: AtomicUsize,
        }
        let services: Arc<Vec<Arc<Svc>>> = Arc::new(
            (0..QUEUES)
                .map(|_| {
                    Arc::new(Svc {
                        queue: MessageQueue::new(),
                        busy: AtomicBool::new(false),
                        in_global_queue: AtomicUsize::new(0),
                        seen: Mutex::new(HashMap::new()),
                        received: AtomicUsize::new(0),
                    })
                })
                .collect(),
        );
        let global: Arc<GlobalQueue<Arc<Svc>>> = Arc::new(GlobalQueue::new());
        let enqueue = |global: &GlobalQueue<Arc<Svc>>, svc: &Arc<Svc>| {
            let before = svc.in_global_queue.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before, 0, "a queue entered the global queue twice");
            global.push(svc.clone());
        };
        let done = Arc::new(AtomicBool::new(false));

        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (services, global) = (services.clone(), global.clone());
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        let svc = &services[(i as usize * 7 + p as usize) % QUEUES];
                        if svc.queue.push(msg(p, i)).unwrap() == Push::Ready {
                            enqueue(&global, svc);
                        }
                    }
                })
            })
            .collect();
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (global, done) = (global.clone(), done.clone());
                std::thread::spawn(move || loop {
                    let Some(svc) = global.pop() else {
                        if done.load(Ordering::SeqCst) && global.is_empty() {
                            return;
                        }
                        std::thread::yield_now();
                        continue;
                    };
                    assert_eq!(svc.in_global_queue.fetch_sub(1, Ordering::SeqCst), 1);
                    assert!(
                        !svc.busy.swap(true, Ordering::SeqCst),
                        "two workers in one queue"
                    );
                    let batch = if w % 2 == 0 { 1 } else { 8 };
                    let mut emptied = false;
                    for _ in 0..batch {
                        match svc.queue.pop() {
                            Some(m) => {
                                let mut seen = svc.seen.lock().unwrap();
                                let last = seen.entry(m.source.0).or_insert(-1);
                                assert!(m.session > *last, "order broken for one sender");
                                *last = m.session;
                                svc.received.fetch_add(1, Ordering::SeqCst);
                            }
                            None => {
                                emptied = true;
                                break;
                            }
                        }
                    }
                    svc.busy.store(false, Ordering::SeqCst);
                    if !emptied {
                        enqueue(&global, &svc);
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        // Wait until every message was consumed, then stop the workers.
        let total = PRODUCERS as usize * PER_PRODUCER as usize;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while services
            .iter()
            .map(|s| s.received.load(Ordering::SeqCst))
            .sum::<usize>()
            < total
        {
            assert!(std::time::Instant::now() < deadline, "messages were lost");
            std::thread::yield_now();
        }
        done.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
        let received: usize = services
            .iter()
            .map(|s| s.received.load(Ordering::SeqCst))
            .sum();
        assert_eq!(received, total);
    }
}
