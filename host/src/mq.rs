//! Message queues (skynet's `skynet_mq.c`): one FIFO per service and the global queue of
//! service queues that have messages, served round robin across scheduling classes
//! (tenants), each class optionally capped in how many of its queues run at once.
//!
//! Invariant (skynet's `MQ_IN_GLOBAL`): a service queue is *in global* from the moment a push
//! makes it non-empty until a pop finds it empty. While it is in global it is either waiting
//! in the [`GlobalQueue`] exactly once or held by exactly one worker, so one service never
//! runs on two threads at once and a queue never sits in the global queue twice. Only the
//! push that flips the flag (it returns [`Push::Ready`]) puts the queue into the global queue.
//!
//! Nothing here knows about wasm or tokio; the module is tested on its own.
//!
//! Locks: every critical section here is straight-line queue bookkeeping that calls out to
//! nothing and cannot panic (the queues are bounded far below a `VecDeque`'s capacity), so
//! no panic can unwind through one of these locks and leave a queue half-changed. They are
//! taken with `lock_plain`, which spares the message path the watch of `crate::sync`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use skywasm_abi::Handle;

use crate::sync::lock_plain as lock;

/// A message a worker took, and what its turn needs to know of the queue
/// ([`MessageQueue::pop_for_turn`]).
pub struct Popped {
    /// The message.
    pub message: Message,
    /// Messages left in the queue behind it.
    pub left: usize,
    /// A pending overload report: the queue length that crossed the threshold.
    pub overload: Option<usize>,
}

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
    pub data: Body,
}

/// A message body: the bytes of one message, or bytes several mailboxes share (a multicast
/// publishes one copy per node, skynet's refcounted package). Reads go through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Bytes of this message alone.
    Owned(Box<[u8]>),
    /// Bytes shared with other messages.
    Shared(Arc<[u8]>),
}

impl Body {
    /// The bytes as a vector (copied only when shared).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Body::Owned(bytes) => bytes.into_vec(),
            Body::Shared(bytes) => bytes.to_vec(),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::Owned(Box::default())
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Body::Owned(bytes) => bytes,
            Body::Shared(bytes) => bytes,
        }
    }
}

impl From<Box<[u8]>> for Body {
    fn from(bytes: Box<[u8]>) -> Body {
        Body::Owned(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Owned(bytes.into_boxed_slice())
    }
}

impl From<&[u8]> for Body {
    fn from(bytes: &[u8]) -> Body {
        Body::Owned(bytes.into())
    }
}

impl From<Arc<[u8]>> for Body {
    fn from(bytes: Arc<[u8]>) -> Body {
        Body::Shared(bytes)
    }
}

/// Bytes of bookkeeping each queued message counts in its mailbox's bytes besides its
/// body: what the queue holds for it. A flood of empty messages is then bounded by the
/// mailbox's bytes as a flood of large ones is, also where no count applies.
pub const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>();

impl Message {
    /// What the message counts in its mailbox's bytes: its body and
    /// [`MESSAGE_OVERHEAD`].
    pub fn footprint(&self) -> usize {
        self.data.len() + MESSAGE_OVERHEAD
    }

    /// A message with an empty body.
    pub fn empty(source: Handle, ptype: u8, session: i32) -> Message {
        Message {
            source,
            session,
            ptype,
            data: Body::default(),
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

/// Why [`MessageQueue::push_bounded`] refused a message (it comes back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The queue is closed: its service has exited.
    Closed(Message),
    /// The queue holds its limit of messages or of bytes.
    Full(Message),
}

/// The mailbox of one service.
#[derive(Debug)]
pub struct MessageQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug)]
struct QueueState {
    messages: VecDeque<Message>,
    /// Footprints of the queued messages ([`Message::footprint`]).
    bytes: usize,
    in_global: bool,
    /// Set once the service is gone: pushes are refused from then on.
    closed: bool,
    /// A queue length to report as an overload warning, taken by the worker.
    overload: usize,
    overload_threshold: usize,
    /// Where the bytes of this queue are also counted (its tenant's, under a cap of all
    /// its mailboxes), if anywhere.
    account: Option<Arc<AtomicUsize>>,
}

impl QueueState {
    /// Takes the oldest message; when there is none, the queue leaves global.
    fn pop(&mut self) -> Option<Message> {
        match self.messages.pop_front() {
            Some(message) => {
                self.sub_bytes(message.footprint());
                Some(message)
            }
            None => {
                self.overload_threshold = OVERLOAD_THRESHOLD;
                self.in_global = false;
                None
            }
        }
    }

    /// Counts `n` more bytes queued.
    fn add_bytes(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n);
        if let Some(account) = &self.account {
            account.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts `n` bytes fewer queued.
    fn sub_bytes(&mut self, n: usize) {
        self.bytes -= n;
        if let Some(account) = &self.account {
            account.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Appends a message whose bytes are counted already; what the push did.
    fn append(&mut self, message: Message) -> Push {
        self.messages.push_back(message);
        let len = self.messages.len();
        if len > self.overload_threshold {
            self.overload = len;
            self.overload_threshold *= 2;
        }
        if self.in_global {
            Push::Queued
        } else {
            self.in_global = true;
            Push::Ready
        }
    }
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
                bytes: 0,
                in_global: false,
                closed: false,
                overload: 0,
                overload_threshold: OVERLOAD_THRESHOLD,
                account: None,
            }),
        }
    }

    /// A held queue (as [`MessageQueue::new_held`]) whose bytes are also counted in
    /// `account`.
    pub fn new_held_counted(account: Arc<AtomicUsize>) -> Self {
        let queue = Self::new_held();
        lock(&queue.state).account = Some(account);
        queue
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
        self.push_measured(message).map(|(push, _)| push)
    }

    /// Appends a message, as [`MessageQueue::push`], and says how many bytes (footprints) the
    /// queue holds with it.
    ///
    /// # Errors
    /// As [`MessageQueue::push`].
    pub fn push_measured(&self, message: Message) -> Result<(Push, usize), Message> {
        self.append_within(message, usize::MAX, usize::MAX)
            .map_err(|refused| match refused {
                Refused::Closed(message) | Refused::Full(message) => message,
            })
    }

    /// Appends a message unless the queue already holds `max_len` messages or the message
    /// would take its bytes ([`Message::footprint`]) past `max_bytes`.
    ///
    /// # Errors
    /// The message comes back as [`Refused::Closed`] or [`Refused::Full`].
    pub fn push_bounded(
        &self,
        message: Message,
        max_len: usize,
        max_bytes: usize,
    ) -> Result<Push, Refused> {
        self.append_within(message, max_len, max_bytes)
            .map(|(push, _)| push)
    }

    /// [`MessageQueue::push_bounded`], also saying the bytes queued with it.
    fn append_within(
        &self,
        message: Message,
        max_len: usize,
        max_bytes: usize,
    ) -> Result<(Push, usize), Refused> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(Refused::Closed(message));
        }
        let footprint = message.footprint();
        // An empty mailbox takes any one message (its body is capped by the sender's
        // `message_size`, and `mailbox_bytes` is at least that).
        let over_bytes =
            state.bytes.saturating_add(footprint) > max_bytes && !state.messages.is_empty();
        if state.messages.len() >= max_len || over_bytes {
            return Err(Refused::Full(message));
        }
        state.add_bytes(footprint);
        let push = state.append(message);
        Ok((push, state.bytes))
    }

    /// Takes the oldest message. `None` means the queue is empty and is no longer in global.
    pub fn pop(&self) -> Option<Message> {
        lock(&self.state).pop()
    }

    /// Takes the oldest message for a worker's turn, with the number of messages left behind
    /// it and any pending overload report (the queue length that crossed the threshold), all
    /// under one lock. `None` as [`MessageQueue::pop`].
    pub fn pop_for_turn(&self) -> Option<Popped> {
        let mut state = lock(&self.state);
        let message = state.pop()?;
        let overload = std::mem::take(&mut state.overload);
        Some(Popped {
            message,
            left: state.messages.len(),
            overload: (overload != 0).then_some(overload),
        })
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

    /// Bytes of the queued messages: bodies and their [`MESSAGE_OVERHEAD`].
    pub fn bytes(&self) -> usize {
        lock(&self.state).bytes
    }

    /// Messages queued and their bytes ([`MessageQueue::bytes`]), read together.
    pub fn occupancy(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.messages.len(), state.bytes)
    }

    /// True when no message is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let bytes = state.bytes;
        state.sub_bytes(bytes);
        state.messages.drain(..).collect()
    }

    /// True once [`MessageQueue::close`] ran.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// True while the queue is in global (waiting in the global queue or held).
    #[cfg(test)]
    pub(crate) fn is_in_global(&self) -> bool {
        lock(&self.state).in_global
    }
}

/// A scheduling class without a cap on busy workers.
pub const UNCAPPED: usize = usize::MAX;

/// The queue of service queues that have messages (skynet's `global_queue`), shared fairly
/// between scheduling classes (the node's tenants).
///
/// Each class has its own FIFO of ready entries; [`GlobalQueue::pop`] serves the classes
/// round robin, one entry each, so a class with many ready queues cannot crowd out a class
/// with few. A class may have a cap on the entries taken and not yet given back
/// ([`GlobalQueue::release`]): the number of workers running its services at once. A class
/// at its cap is skipped, so its waiting entries do not count as takeable.
#[derive(Debug)]
pub struct GlobalQueue<T> {
    state: Mutex<GlobalState<T>>,
    /// Caps by class, fixed at creation (read without the lock).
    caps: Box<[usize]>,
    /// Mirrors the number of takeable entries so idle workers and wake-up decisions can
    /// look without the lock.
    takeable: AtomicUsize,
}

#[derive(Debug)]
struct GlobalState<T> {
    classes: Vec<ClassQueue<T>>,
    /// Classes with ready entries, in round-robin order; each at most once.
    ring: VecDeque<usize>,
    /// Entries of classes below their cap.
    takeable: usize,
}

#[derive(Debug)]
struct ClassQueue<T> {
    ready: VecDeque<T>,
    /// Entries taken and not released (counted only for capped classes).
    busy: usize,
    cap: usize,
    in_ring: bool,
}

impl<T> ClassQueue<T> {
    fn open(&self) -> bool {
        self.busy < self.cap
    }
}

impl<T> Default for GlobalQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> GlobalQueue<T> {
    /// An empty global queue with one uncapped class.
    pub fn new() -> Self {
        Self::with_caps(&[UNCAPPED])
    }

    /// An empty global queue with a class per cap ([`UNCAPPED`] or a number of entries that
    /// may be taken at once; 0 is treated as 1).
    pub fn with_caps(caps: &[usize]) -> Self {
        let caps: Box<[usize]> = caps.iter().map(|c| (*c).max(1)).collect();
        GlobalQueue {
            state: Mutex::new(GlobalState {
                classes: caps
                    .iter()
                    .map(|&cap| ClassQueue {
                        ready: VecDeque::new(),
                        busy: 0,
                        cap,
                        in_ring: false,
                    })
                    .collect(),
                ring: VecDeque::new(),
                takeable: 0,
            }),
            caps,
            takeable: AtomicUsize::new(0),
        }
    }

    /// True when entries of `class` count against a cap (and must be released).
    pub fn is_capped(&self, class: usize) -> bool {
        self.caps.get(class).is_some_and(|cap| *cap != UNCAPPED)
    }

    /// Appends a ready entry of `class` (an unknown class is treated as class 0); returns
    /// the number of takeable entries.
    pub fn push(&self, class: usize, item: T) -> usize {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let class = if class < state.classes.len() {
            class
        } else {
            0
        };
        let queue = &mut state.classes[class];
        queue.ready.push_back(item);
        if !queue.in_ring {
            queue.in_ring = true;
            state.ring.push_back(class);
        }
        if queue.open() {
            state.takeable += 1;
        }
        self.publish(state.takeable)
    }

    /// Takes the oldest entry of the next class in turn that is below its cap, and counts
    /// it against that cap. Returns the entry with its class.
    pub fn pop(&self) -> Option<(usize, T)> {
        if self.takeable.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut state = lock(&self.state);
        let state = &mut *state;
        for _ in 0..state.ring.len() {
            let class = state.ring.pop_front()?;
            let queue = &mut state.classes[class];
            if !queue.open() {
                state.ring.push_back(class);
                continue;
            }
            let Some(item) = queue.ready.pop_front() else {
                queue.in_ring = false;
                continue;
            };
            state.takeable -= 1;
            if queue.ready.is_empty() {
                queue.in_ring = false;
            } else {
                state.ring.push_back(class);
            }
            if queue.cap != UNCAPPED {
                queue.busy += 1;
                if !queue.open() {
                    state.takeable -= queue.ready.len();
                }
            }
            self.publish(state.takeable);
            return Some((class, item));
        }
        None
    }

    /// Counts one more taken entry of a capped `class` that did not come from
    /// [`GlobalQueue::pop`] (a worker's next slot); false, counting nothing, at the cap.
    pub fn try_acquire(&self, class: usize) -> bool {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let Some(queue) = state.classes.get_mut(class) else {
            return true;
        };
        if queue.cap == UNCAPPED {
            return true;
        }
        if !queue.open() {
            return false;
        }
        queue.busy += 1;
        if !queue.open() {
            state.takeable -= queue.ready.len();
            self.publish(state.takeable);
        }
        true
    }

    /// Gives back one taken entry of a capped `class`. Returns true when that made waiting
    /// entries takeable again.
    pub fn release(&self, class: usize) -> bool {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let Some(queue) = state.classes.get_mut(class) else {
            return false;
        };
        if queue.cap == UNCAPPED || queue.busy == 0 {
            return false;
        }
        let was_open = queue.open();
        queue.busy -= 1;
        if was_open || queue.ready.is_empty() {
            return false;
        }
        state.takeable += queue.ready.len();
        self.publish(state.takeable);
        true
    }

    fn publish(&self, takeable: usize) -> usize {
        // SeqCst pairs with the sleeper count in the scheduler: a worker that announces it
        // is going to sleep and then reads this count cannot miss a push.
        self.takeable.store(takeable, Ordering::SeqCst);
        takeable
    }

    /// Number of entries a worker could take now.
    pub fn len(&self) -> usize {
        self.takeable.load(Ordering::SeqCst)
    }

    /// True when no entry can be taken now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry and forgets what was taken (used at shutdown).
    pub fn drain(&self) -> Vec<T> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        state.ring.clear();
        state.takeable = 0;
        let mut items = Vec::new();
        for queue in &mut state.classes {
            items.extend(queue.ready.drain(..));
            queue.busy = 0;
            queue.in_ring = false;
        }
        self.publish(0);
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
    fn a_measured_push_says_the_bytes_held_with_it() {
        let q = MessageQueue::new();
        let sized = |n: usize| Message {
            data: vec![0; n].into(),
            ..msg(1, 0)
        };
        let o = MESSAGE_OVERHEAD;
        assert_eq!(q.push_measured(sized(10)), Ok((Push::Ready, 10 + o)));
        assert_eq!(q.push_measured(sized(5)), Ok((Push::Queued, 15 + 2 * o)));
        q.pop();
        assert_eq!(q.bytes(), 5 + o);
        q.close();
        assert_eq!(q.bytes(), 0, "closing gives every byte back");
        assert!(q.push_measured(sized(1)).is_err());
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
            // A worker's pop takes the report; the message goes back, so the queue grows
            // by one each time.
            let popped = q.pop_for_turn().expect("a message");
            reports.extend(popped.overload);
            q.push(popped.message).unwrap();
        }
        assert_eq!(reports, vec![1025, 2049, 4097]);
        while q.pop().is_some() {}
        for i in 0..1100 {
            q.push(msg(1, i)).unwrap();
        }
        assert_eq!(
            q.pop_for_turn().and_then(|popped| popped.overload),
            Some(1025),
            "threshold resets once the queue empties"
        );
    }

    #[test]
    fn a_turn_s_pop_says_what_is_left_and_takes_the_overload_report_once() {
        let q = MessageQueue::new();
        for i in 0..1100 {
            q.push(msg(1, i)).unwrap();
        }
        let first = q.pop_for_turn().expect("a message");
        assert_eq!((first.message.session, first.left), (0, 1099));
        assert_eq!(first.overload, Some(1025));
        let second = q.pop_for_turn().expect("a message");
        assert_eq!((second.message.session, second.left), (1, 1098));
        assert_eq!(second.overload, None, "the report was taken");
        while q.pop_for_turn().is_some() {}
        assert_eq!(
            q.push(msg(1, 1)),
            Ok(Push::Ready),
            "an emptied queue left global"
        );
    }

    #[test]
    fn a_bounded_push_keeps_to_the_message_and_byte_limits() {
        let q = MessageQueue::new();
        let sized = |n: usize| Message {
            data: vec![0; n].into(),
            ..msg(1, 1)
        };
        let o = MESSAGE_OVERHEAD;
        let cap = 100 + 2 * o;
        assert_eq!(q.push_bounded(sized(60), 3, cap), Ok(Push::Ready));
        assert_eq!(q.push_bounded(sized(40), 3, cap), Ok(Push::Queued));
        assert_eq!(q.bytes(), cap);
        assert!(
            matches!(q.push_bounded(sized(0), 3, cap), Err(Refused::Full(_))),
            "an empty message counts its bookkeeping"
        );
        assert_eq!(q.push_bounded(sized(0), 3, cap + o), Ok(Push::Queued));
        assert!(
            matches!(
                q.push_bounded(sized(0), 3, usize::MAX),
                Err(Refused::Full(_))
            ),
            "3 messages"
        );
        q.pop();
        assert_eq!(q.bytes(), 40 + 2 * o, "a pop gives its bytes back");
        assert_eq!(q.push_bounded(sized(60), 3, cap + o), Ok(Push::Queued));
        q.close();
        assert!(matches!(
            q.push_bounded(sized(0), 9, 999),
            Err(Refused::Closed(_))
        ));
    }

    #[test]
    fn an_empty_mailbox_takes_one_message_of_any_size() {
        let q = MessageQueue::new();
        let big = Message {
            data: vec![0; 100].into(),
            ..msg(1, 1)
        };
        assert_eq!(
            q.push_bounded(big.clone(), usize::MAX, 100),
            Ok(Push::Ready)
        );
        assert!(matches!(
            q.push_bounded(big, usize::MAX, 100),
            Err(Refused::Full(_))
        ));
    }

    #[test]
    fn empty_messages_without_a_count_meet_the_byte_bound() {
        let q = MessageQueue::new();
        let cap = 1000 * MESSAGE_OVERHEAD;
        let taken = std::iter::repeat_with(|| msg(1, 0))
            .take(2000)
            .filter(|m| q.push_bounded(m.clone(), usize::MAX, cap).is_ok())
            .count();
        assert_eq!(taken, 1000);
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
        assert_eq!(g.push(0, 1), 1);
        assert_eq!(g.push(0, 2), 2);
        assert_eq!(g.len(), 2);
        assert_eq!(g.pop(), Some((0, 1)));
        assert_eq!(g.pop(), Some((0, 2)));
        assert_eq!(g.pop(), None);
        assert!(g.is_empty());
    }

    #[test]
    fn classes_are_served_round_robin() {
        let g = GlobalQueue::with_caps(&[UNCAPPED, UNCAPPED, UNCAPPED]);
        for n in 0..6 {
            g.push(1, 100 + n);
        }
        g.push(0, 1);
        g.push(2, 200);
        g.push(0, 2);
        let order: Vec<i32> = std::iter::from_fn(|| g.pop()).map(|(_, n)| n).collect();
        assert_eq!(order, vec![100, 1, 200, 101, 2, 102, 103, 104, 105]);
    }

    #[test]
    fn a_class_at_its_cap_is_skipped_until_released() {
        let g = GlobalQueue::with_caps(&[UNCAPPED, 1]);
        g.push(1, 10);
        g.push(1, 11);
        g.push(0, 1);
        assert_eq!(g.len(), 3);
        assert_eq!(g.pop(), Some((1, 10)));
        assert_eq!(
            g.len(),
            1,
            "class 1 is at its cap: its waiting entry is not takeable"
        );
        assert_eq!(g.pop(), Some((0, 1)));
        assert_eq!(g.pop(), None);
        g.push(1, 12);
        assert!(g.is_empty());
        assert!(!g.try_acquire(1), "no second worker for class 1");
        assert!(g.release(1), "the release makes its entries takeable");
        assert_eq!(g.len(), 2);
        assert_eq!(g.pop(), Some((1, 11)));
        assert!(g.is_empty());
        assert!(!g.release(0), "uncapped classes are not counted");
        assert!(g.release(1));
        assert!(g.try_acquire(1));
        assert!(g.is_empty());
        assert!(g.release(1));
        assert_eq!(g.pop(), Some((1, 12)));
        assert!(!g.release(1), "nothing waits");
        assert!(!g.release(1), "releasing more than was taken is ignored");
    }

    #[test]
    fn the_takeable_count_follows_a_model() {
        // Random pushes, pops and releases against a model of queued and held entries.
        let mut seed = 0x2545_f491_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let caps = [UNCAPPED, 1, 2];
        let g = GlobalQueue::with_caps(&caps);
        let mut queued = [0usize; 3];
        let mut held = [0usize; 3];
        for step in 0..20_000 {
            let class = (next() % 3) as usize;
            match next() % 4 {
                0 | 1 => {
                    g.push(class, step);
                    queued[class] += 1;
                }
                2 => {
                    if let Some((class, _)) = g.pop() {
                        queued[class] -= 1;
                        held[class] += 1;
                    }
                }
                _ => {
                    if held[class] > 0 {
                        held[class] -= 1;
                        g.release(class);
                    }
                }
            }
            let expected: usize = (0..3)
                .filter(|&c| caps[c] == UNCAPPED || held[c] < caps[c])
                .map(|c| queued[c])
                .sum();
            assert_eq!(g.len(), expected, "step {step}");
            for class in 1..3 {
                assert!(held[class] <= caps[class], "class {class} over its cap");
            }
        }
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
            global.push(0, svc.clone());
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
                    let Some((_, svc)) = global.pop() else {
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
