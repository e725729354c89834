//! The in-guest runtime: a single-threaded executor, the table of calls waiting for replies,
//! and the handlers of each message type.
//!
//! Every incoming request runs as its own task (like skynet runs each message in a
//! coroutine). A task that awaits a reply is parked under its session; the reply
//! (PTYPE_RESPONSE, or PTYPE_ERROR for a failed call) wakes it. After each export call the
//! executor polls every task that became ready, so `fork`ed work and woken calls run before
//! control returns to the host. Nothing here blocks: the host never waits on a guest.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use rustc_hash::FxHasher;
use skywasm_abi::{ptype, Handle};

use crate::error::{Error, Result};
use crate::request::Request;

type Task = Pin<Box<dyn Future<Output = ()>>>;
type Handler = Rc<dyn Fn(Request) -> Task>;
type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The outcome of a call, stored until the waiting task takes it.
enum Reply {
    Waiting(Option<Waker>),
    Done(Result<Vec<u8>>),
}

struct Pending {
    dest: Handle,
    reply: Reply,
}

/// A task slot: the task (taken out while it is being polled) and a waker for its index,
/// made once per slot and reused by every task that lands there.
struct Slot {
    task: Option<Task>,
    waker: Waker,
}

struct Runtime {
    /// Tasks by index; freed indices are reused.
    tasks: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    live_tasks: Cell<usize>,
    /// Calls waiting for replies, by session. Made at the first call: an empty hash map is a
    /// constant in read-only data, and an idle service that copied it at start would read a
    /// page of its memory image (which the kernel maps with its neighbours).
    pending: RefCell<Option<FxMap<i32, Pending>>>,
    /// Handlers by message type (0..=255).
    handlers: RefCell<Vec<Option<Handler>>>,
    exited: Cell<bool>,
    /// Task indices woken since the last poll round (wakers only carry the index).
    ready: RefCell<VecDeque<u32>>,
}

impl Runtime {
    const fn new() -> Self {
        Runtime {
            tasks: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            live_tasks: Cell::new(0),
            pending: RefCell::new(None),
            handlers: RefCell::new(Vec::new()),
            exited: Cell::new(false),
            ready: RefCell::new(VecDeque::new()),
        }
    }
}

/// Runs `f` on the service's runtime, which lives on the heap behind a root in the spare
/// memory when there is some (so that an idle service writes no static; see
/// `crate::spare`).
#[cfg(target_family = "wasm")]
fn with_runtime<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    static ROOT: crate::spare::StaticRoot = crate::spare::StaticRoot::new();
    f(crate::spare::rooted(
        crate::spare::Root::Runtime,
        &ROOT,
        Runtime::new,
    ))
}

/// Runs `f` on this thread's runtime (builds for the host: the SDK's unit tests).
#[cfg(not(target_family = "wasm"))]
fn with_runtime<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    thread_local! {
        static RUNTIME: Runtime = const { Runtime::new() };
    }
    RUNTIME.with(f)
}

struct TaskWaker(u32);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        with_runtime(|rt| rt.ready.borrow_mut().push_back(self.0));
    }
}

/// Finds a free slot for a task and stores it there; returns the index.
fn insert(task: Task) -> u32 {
    with_runtime(|rt| {
        rt.live_tasks.set(rt.live_tasks.get() + 1);
        let mut tasks = rt.tasks.borrow_mut();
        match rt.free.borrow_mut().pop() {
            Some(index) => {
                tasks[index as usize].task = Some(task);
                index
            }
            None => {
                let index = tasks.len() as u32;
                tasks.push(Slot {
                    task: Some(task),
                    waker: Waker::from(Arc::new(TaskWaker(index))),
                });
                index
            }
        }
    })
}

/// Polls the task in slot `index` once; frees the slot when it finishes. A wake for an
/// empty or reused slot is harmless (futures tolerate spurious polls).
fn poll_slot(index: u32) {
    let taken = with_runtime(|rt| {
        let mut tasks = rt.tasks.borrow_mut();
        let slot = tasks.get_mut(index as usize)?;
        Some((slot.task.take()?, slot.waker.clone()))
    });
    let Some((mut task, waker)) = taken else {
        return;
    };
    let mut cx = Context::from_waker(&waker);
    let done = task.as_mut().poll(&mut cx).is_ready();
    with_runtime(|rt| {
        if done {
            rt.live_tasks.set(rt.live_tasks.get() - 1);
            rt.free.borrow_mut().push(index);
        } else {
            rt.tasks.borrow_mut()[index as usize].task = Some(task);
        }
    });
}

/// Runs every ready task until none is left.
fn run_ready() {
    loop {
        if with_runtime(|rt| rt.exited.get()) {
            return;
        }
        let Some(index) = with_runtime(|rt| rt.ready.borrow_mut().pop_front()) else {
            return;
        };
        poll_slot(index);
    }
}

/// Starts a task: polled at once, then whenever it is woken.
pub(crate) fn spawn(task: Task) {
    poll_slot(insert(task));
}

/// Queues a task to start after the current message, like skynet's `fork`.
pub(crate) fn spawn_later(task: Task) {
    let index = insert(task);
    with_runtime(|rt| rt.ready.borrow_mut().push_back(index));
}

/// Registers the handler of a message type.
pub(crate) fn set_handler(ptype: u32, handler: Handler) {
    with_runtime(|rt| {
        let mut handlers = rt.handlers.borrow_mut();
        let index = ptype as usize;
        if handlers.len() <= index {
            handlers.resize(index + 1, None);
        }
        handlers[index] = Some(handler);
    });
}

fn handler(ptype: u32) -> Option<Handler> {
    with_runtime(|rt| rt.handlers.borrow().get(ptype as usize).cloned().flatten())
}

/// True when a handler is registered for `ptype`.
pub(crate) fn has_handler(ptype: u32) -> bool {
    handler(ptype).is_some()
}

/// Marks the service as exited: no further task runs in this instance.
pub(crate) fn mark_exited() {
    with_runtime(|rt| rt.exited.set(true));
}

/// Number of calls waiting for a reply.
pub fn pending_calls() -> usize {
    with_runtime(|rt| rt.pending.borrow().as_ref().map_or(0, HashMap::len))
}

/// Number of suspended tasks.
pub fn suspended_tasks() -> usize {
    with_runtime(|rt| rt.live_tasks.get())
}

/// Waits for the reply carrying `session`.
pub(crate) fn reply(dest: Handle, session: i32) -> ReplyFuture {
    with_runtime(|rt| {
        let mut pending = rt.pending.borrow_mut();
        pending.get_or_insert_with(FxMap::default).insert(
            session,
            Pending {
                dest,
                reply: Reply::Waiting(None),
            },
        )
    });
    ReplyFuture { session }
}

/// The future of a call's reply. Dropping it forgets the call (a late reply is ignored).
pub struct ReplyFuture {
    session: i32,
}

impl ReplyFuture {
    /// The session the reply will carry.
    pub fn session(&self) -> i32 {
        self.session
    }
}

impl Future for ReplyFuture {
    type Output = Result<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        with_runtime(|rt| {
            let mut pending = rt.pending.borrow_mut();
            let pending = pending.get_or_insert_with(FxMap::default);
            // One lookup while waiting (the common poll); the entry is removed once answered.
            match pending.get_mut(&self.session) {
                Some(Pending {
                    reply: Reply::Waiting(waker),
                    ..
                }) => {
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Some(_) => {}
                None => {
                    return Poll::Ready(Err(Error::Other(format!(
                        "session {} was already answered",
                        self.session
                    ))))
                }
            }
            match pending.remove(&self.session) {
                Some(Pending {
                    reply: Reply::Done(result),
                    ..
                }) => Poll::Ready(result),
                _ => Poll::Pending,
            }
        })
    }
}

impl Drop for ReplyFuture {
    fn drop(&mut self) {
        // Only an unfinished wait leaves an entry behind.
        with_runtime(|rt| {
            if let Ok(mut pending) = rt.pending.try_borrow_mut() {
                if let Some(pending) = pending.as_mut() {
                    pending.remove(&self.session);
                }
            }
        });
    }
}

/// Delivers a reply to the task waiting on `session`; false if nobody waits.
fn resolve(session: i32, ok: bool, data: Vec<u8>) -> bool {
    with_runtime(|rt| {
        let mut pending = rt.pending.borrow_mut();
        let Some(entry) = pending.as_mut().and_then(|p| p.get_mut(&session)) else {
            return false;
        };
        let result = if ok {
            Ok(data)
        } else {
            Err(Error::CallFailed {
                dest: entry.dest,
                session,
                reason: (!data.is_empty()).then(|| String::from_utf8_lossy(&data).into_owned()),
            })
        };
        if let Reply::Waiting(Some(waker)) =
            std::mem::replace(&mut entry.reply, Reply::Done(result))
        {
            waker.wake();
        }
        true
    })
}

/// Entry points used by [`crate::service!`]. Not part of the public API.
#[doc(hidden)]
pub mod entry {
    use super::*;

    /// `skywasm_alloc`: memory for an incoming message, owned by the next dispatch.
    pub fn alloc(len: u32) -> u32 {
        let mut buffer = Vec::<u8>::with_capacity(len as usize);
        let ptr = buffer.as_mut_ptr();
        std::mem::forget(buffer);
        ptr as usize as u32
    }

    /// Takes back a buffer handed out by [`alloc`].
    ///
    /// # Safety
    /// `ptr`/`len` must come from one `alloc(len)` whose bytes the host filled.
    unsafe fn take(ptr: u32, len: u32) -> Vec<u8> {
        if len == 0 {
            return Vec::new();
        }
        // SAFETY: the caller guarantees `ptr` came from `alloc(len)` (capacity `len`) and
        // that the host initialized all `len` bytes.
        unsafe { Vec::from_raw_parts(ptr as usize as *mut u8, len as usize, len as usize) }
    }

    /// `skywasm_init`: runs the user's start function with the argument string.
    pub fn init(ptr: u32, len: u32, start: fn(&str) -> Result<()>) -> i32 {
        // SAFETY: the host placed the argument string with `skywasm_alloc(len)`.
        let args = unsafe { take(ptr, len) };
        let args = String::from_utf8_lossy(&args);
        let code = match start(&args) {
            Ok(()) => 0,
            Err(e) => {
                crate::log(&format!("start failed: {e}"));
                1
            }
        };
        run_ready();
        code
    }

    /// `skywasm_dispatch`: routes one message.
    pub fn dispatch(ptype: u32, session: i32, source: u32, ptr: u32, len: u32) {
        // SAFETY: the host placed the body with `skywasm_alloc(len)`.
        let data = unsafe { take(ptr, len) };
        if with_runtime(|rt| rt.exited.get()) {
            return;
        }
        match ptype {
            ptype::RESPONSE | ptype::ERROR if session != 0 => {
                if !resolve(session, ptype == ptype::RESPONSE, data) && ptype == ptype::RESPONSE {
                    crate::log(&format!(
                        "unknown response session {session} from {}",
                        Handle(source)
                    ));
                }
            }
            _ => {
                let handler = handler(ptype);
                let request = Request::new(ptype, session, Handle(source), data);
                match handler {
                    Some(handler) => spawn(handler(request)),
                    // A traced caller announces its tag before each request (skynet.lua's
                    // PTYPE_TRACE); a service that does not trace ignores it, as skynet does.
                    None if ptype == ptype::TRACE && session == 0 => {}
                    None => {
                        crate::log(&format!(
                            "no handler for message type {ptype} from {} (session {session})",
                            Handle(source)
                        ));
                        request.fail();
                    }
                }
            }
        }
        run_ready();
    }
}
