//! Writing to a cluster connection from any thread (skynet's direct write): a worker that
//! sends a request, or `clusterd` answering one, writes straight to the socket when nothing
//! is queued on it — no hand-off to the network thread, which would cost a thread wake-up
//! each way. What the socket does not take at once is queued, in order, for a writer task
//! on the network thread.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::{Arc, Mutex};

use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::sync::lock;

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
        tokio::spawn(writer(outbox.clone()));
        outbox
    }

    /// Writes `bytes` after everything written before; false once the connection is closed.
    pub(crate) fn write(&self, bytes: Vec<u8>) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
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

    /// Writes from other threads and from the runtime, large and small, arrive whole and in
    /// order, also when the reader is slow enough to fill the socket's buffers.
    #[test]
    fn writes_from_any_thread_arrive_in_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (outbox, mut peer) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let at = listener.local_addr().unwrap();
            let stream = TcpStream::connect(at).await.unwrap();
            let (peer, _) = listener.accept().await.unwrap();
            (Outbox::new(Arc::new(stream)), peer)
        });
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
}
