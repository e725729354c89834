//! Writing to a node-to-node connection (cluster, harbor) from any thread (skynet's direct
//! write): a worker that sends a request, or `clusterd` answering one, writes straight to
//! the socket when nothing is queued on it — no hand-off to the network thread, which would
//! cost a thread wake-up each way. What the socket does not take at once is queued, in order, for a writer task
//! on the network thread.
//!
//! Holding writes back: a write costs a system call, and on loopback the whole of the
//! peer's receive path too. While a [`Hold`] is active on a thread, writes there are
//! appended to their outbox's held bytes instead, and go out together — one system call for
//! many frames — when the hold is released, when they pass [`HOLD_LIMIT`], or before any
//! write made without a hold (so nothing overtakes them). Holds nest: `clusterd` holds its
//! writes while more messages wait in its queue; [`batch`] holds those of one message's
//! dispatch, or of one read's worth of work on the network thread.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::sync::{lock, Watched};

/// Held bytes past which an outbox writes at once.
pub(crate) const HOLD_LIMIT: usize = 32 << 10;

thread_local! {
    /// The outboxes holding bytes for the hold active on this thread, if one is.
    static HOLDING: RefCell<Option<Vec<Arc<Outbox>>>> = const { RefCell::new(None) };
}

/// Writes held back on one thread, to be written together.
#[derive(Default)]
pub(crate) struct Hold {
    /// Outboxes with held bytes (possibly already written: then nothing is left).
    outboxes: Vec<Arc<Outbox>>,
}

impl Hold {
    /// Runs `work` with writes on this thread held back by this hold (an enclosing hold
    /// collects again once `work` is done).
    pub(crate) fn hold<R>(&mut self, work: impl FnOnce() -> R) -> R {
        /// Ends the hold on this thread, giving the enclosing one back, even if `work`
        /// unwinds.
        struct Restore<'a> {
            outboxes: &'a mut Vec<Arc<Outbox>>,
            enclosing: Option<Vec<Arc<Outbox>>>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                *self.outboxes = HOLDING.replace(self.enclosing.take()).unwrap_or_default();
            }
        }
        let enclosing = HOLDING.replace(Some(std::mem::take(&mut self.outboxes)));
        let _restore = Restore {
            outboxes: &mut self.outboxes,
            enclosing,
        };
        work()
    }

    /// Writes everything held.
    pub(crate) fn release(&mut self) {
        for outbox in self.outboxes.drain(..) {
            outbox.release_held();
        }
    }
}

/// Runs `work` with the writes it makes on this thread written together when it is done
/// (or, inside a hold, when that hold is released).
pub(crate) fn batch<R>(work: impl FnOnce() -> R) -> R {
    if HOLDING.with_borrow(Option::is_some) {
        return work();
    }
    let mut hold = Hold::default();
    let result = hold.hold(work);
    hold.release();
    result
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

/// The write side of one connection.
pub(crate) struct Outbox {
    stream: Arc<TcpStream>,
    state: Mutex<State>,
    /// Wakes the writer task: bytes were queued, or the outbox closed.
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// Buffers not yet written whole, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// Bytes of the front buffer already written.
    written: usize,
    /// Bytes held back by a [`Hold`], to go after `queue`.
    held: Vec<u8>,
    closed: bool,
}

impl Outbox {
    /// An outbox for `stream`, with its writer task (call inside the runtime).
    pub(crate) fn new(stream: Arc<TcpStream>) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox {
            stream,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        });
        let writing = outbox.clone();
        tokio::spawn(async move {
            if let Err(panic) = crate::sync::contained(writer(writing.clone())).await {
                tracing::error!("the host panicked writing to a connection: {panic}");
                // Later writes fail at once instead of queueing for no writer.
                writing.close();
            }
        });
        outbox
    }

    /// Writes `bytes` after everything written before (held back while a [`Hold`] is
    /// active on this thread); false once the connection is closed.
    pub(crate) fn write(self: &Arc<Self>, bytes: Vec<u8>) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        let holding = HOLDING.with_borrow_mut(|holding| match holding {
            Some(outboxes) => {
                // Another hold may hold bytes here too: this one must release them as well.
                if !outboxes.iter().any(|held| Arc::ptr_eq(held, self)) {
                    outboxes.push(self.clone());
                }
                true
            }
            None => false,
        });
        if !holding && state.held.is_empty() {
            return self.write_now(state, bytes);
        }
        state.held.extend_from_slice(&bytes);
        if holding && state.held.len() < HOLD_LIMIT {
            return true;
        }
        let held = std::mem::take(&mut state.held);
        self.write_now(state, held)
    }

    /// Writes the held bytes.
    fn release_held(&self) {
        let mut state = lock(&self.state);
        if state.closed || state.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut state.held);
        self.write_now(state, held);
    }

    /// Writes `bytes` to the socket, or queues what it does not take for the writer task.
    fn write_now(&self, mut state: Watched<MutexGuard<'_, State>>, bytes: Vec<u8>) -> bool {
        let mut written = 0;
        if state.queue.is_empty() {
            loop {
                match self.stream.try_write(&bytes[written..]) {
                    Ok(n) => {
                        written += n;
                        if written == bytes.len() {
                            return true;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        state.closed = true;
                        drop(state);
                        self.wake.notify_one();
                        return false;
                    }
                }
            }
            state.written = written;
        }
        state.queue.push_back(bytes);
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Stops writing: later writes fail, and the writer task ends.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_one();
    }

    /// True once closed (by [`Outbox::close`] or a failed write).
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

/// Writes what is queued, as the socket takes it, until the outbox closes.
async fn writer(outbox: Arc<Outbox>) {
    loop {
        let waiting_for_room = {
            let mut state = lock(&outbox.state);
            if state.closed {
                return;
            }
            loop {
                let written = state.written;
                let Some(front) = state.queue.front() else {
                    break;
                };
                match outbox.stream.try_write(&front[written..]) {
                    Ok(n) => {
                        if written + n == front.len() {
                            state.queue.pop_front();
                            state.written = 0;
                        } else {
                            state.written = written + n;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        state.closed = true;
                        return;
                    }
                }
            }
            !state.queue.is_empty()
        };
        if waiting_for_room {
            if outbox.stream.writable().await.is_err() {
                outbox.close();
                return;
            }
        } else {
            outbox.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A runtime, an outbox on a loopback connection, and the connection's other end.
    fn connected() -> (tokio::runtime::Runtime, Arc<Outbox>, TcpStream) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (outbox, peer) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let at = listener.local_addr().unwrap();
            let stream = TcpStream::connect(at).await.unwrap();
            let (peer, _) = listener.accept().await.unwrap();
            (Outbox::new(Arc::new(stream)), peer)
        });
        (runtime, outbox, peer)
    }

    /// Writes from other threads and from the runtime, large and small, arrive whole and in
    /// order, also when the reader is slow enough to fill the socket's buffers.
    #[test]
    fn writes_from_any_thread_arrive_in_order() {
        let (runtime, outbox, mut peer) = connected();
        let mut expected = Vec::new();
        let writers: Vec<_> = (0..2u8)
            .map(|w| {
                let outbox = outbox.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..200u32 {
                        // Every 50th buffer is 256 KiB: more than the socket takes at once.
                        let size = if i % 50 == 0 { 256 << 10 } else { 100 };
                        let mut bytes = vec![w; size];
                        bytes[..4].copy_from_slice(&i.to_le_bytes());
                        assert!(outbox.write(bytes.clone()));
                        mine.push(bytes);
                    }
                    mine
                })
            })
            .collect();
        // Read while they write (the runtime drives the writer task meanwhile).
        let total: usize = 2 * (4 * (256 << 10) + 196 * 100);
        let received = runtime.block_on(async {
            let mut received = vec![0u8; total];
            peer.read_exact(&mut received).await.unwrap();
            received
        });
        for writer in writers {
            expected.push(writer.join().unwrap());
        }
        // Each writer's buffers appear whole and in its order.
        let mut at = 0;
        let mut next = [0usize; 2];
        while at < received.len() {
            let w = received[at + 4] as usize;
            let bytes = &expected[w][next[w]];
            assert_eq!(
                &received[at..at + bytes.len()],
                &bytes[..],
                "writer {w}, buffer {}",
                next[w]
            );
            at += bytes.len();
            next[w] += 1;
        }
        assert_eq!(next, [200, 200]);
        outbox.close();
        assert!(!outbox.write(vec![1]));
    }

    /// Reads exactly `n` bytes the peer got, boundedly.
    fn read_n(runtime: &tokio::runtime::Runtime, peer: &mut TcpStream, n: usize) -> Vec<u8> {
        runtime.block_on(async {
            let mut bytes = vec![0u8; n];
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                peer.read_exact(&mut bytes),
            )
            .await
            .expect("the bytes arrive")
            .unwrap();
            bytes
        })
    }

    /// Nothing more has arrived (after the writes above had time to be delivered).
    fn nothing_arrived(runtime: &tokio::runtime::Runtime, peer: &mut TcpStream) {
        runtime.block_on(async {
            let mut byte = [0u8; 1];
            let read =
                tokio::time::timeout(std::time::Duration::from_millis(50), peer.read(&mut byte))
                    .await;
            assert!(read.is_err(), "held bytes were written: {read:?}");
        });
    }

    #[test]
    fn held_writes_go_out_on_release_before_limit_and_before_unheld_writes() {
        let (runtime, outbox, mut peer) = connected();
        let mut hold = Hold::default();
        hold.hold(|| {
            assert!(outbox.write(b"one".to_vec()));
            assert!(outbox.write(b"two".to_vec()));
        });
        nothing_arrived(&runtime, &mut peer);
        // A write without a hold (another thread) goes after what is held.
        let other = outbox.clone();
        std::thread::spawn(move || assert!(other.write(b"three".to_vec())))
            .join()
            .unwrap();
        assert_eq!(read_n(&runtime, &mut peer, 11), b"onetwothree");
        // Released: written.
        hold.hold(|| assert!(outbox.write(b"four".to_vec())));
        nothing_arrived(&runtime, &mut peer);
        hold.release();
        assert_eq!(read_n(&runtime, &mut peer, 4), b"four");
        // Past the limit: written without waiting for the release.
        let big = vec![7u8; HOLD_LIMIT];
        hold.hold(|| assert!(outbox.write(big.clone())));
        assert_eq!(read_n(&runtime, &mut peer, HOLD_LIMIT), big);
        // A hold ends with its scope: a write after it is not held.
        assert!(outbox.write(b"five".to_vec()));
        assert_eq!(read_n(&runtime, &mut peer, 4), b"five");
    }

    #[test]
    fn holds_nest_and_a_batch_joins_the_hold_around_it() {
        let (runtime, outbox, mut peer) = connected();
        // A batch alone: written when its work is done.
        batch(|| {
            assert!(outbox.write(b"a".to_vec()));
            nothing_arrived(&runtime, &mut peer);
        });
        assert_eq!(read_n(&runtime, &mut peer, 1), b"a");
        // A batch inside a hold joins it: nothing is written before the hold's release.
        let mut hold = Hold::default();
        hold.hold(|| batch(|| assert!(outbox.write(b"b".to_vec()))));
        nothing_arrived(&runtime, &mut peer);
        // A hold inside a batch keeps its own writes past the batch's end...
        let mut inner = Hold::default();
        batch(|| {
            inner.hold(|| assert!(outbox.write(b"c".to_vec())));
            // ...and the batch collects again once the inner hold's work is done.
            assert!(outbox.write(b"d".to_vec()));
        });
        // The batch's release wrote the outbox's held bytes, the inner hold's with them.
        assert_eq!(read_n(&runtime, &mut peer, 3), b"bcd");
        inner.release();
        hold.release();
        nothing_arrived(&runtime, &mut peer);
    }
}
