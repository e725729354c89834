//! Busy polling of the network thread while node-to-node traffic (cluster, harbor) is
//! expected.
//!
//! A round trip between two nodes crosses the network thread of each, and a thread asleep
//! in `epoll_wait` takes tens of microseconds to wake on a virtual machine: more than the
//! work of the round trip itself. So, like an Erlang scheduler's busy wait before sleeping,
//! the network thread keeps polling its sockets (without blocking, yielding the core to
//! any other runnable thread in between) for a short window after node-to-node traffic — a
//! call sent, a request or reply read — and only then sleeps. A reply or the next request that
//! arrives within the window is read at once. The window is `cluster_busy_poll`
//! (microseconds; 0 turns it off).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The network thread's polling window, extended by every [`BusyPoll::touch`].
pub(crate) struct BusyPoll {
    window: Duration,
    origin: Instant,
    /// End of the window, in nanoseconds since `origin`.
    until: AtomicU64,
    /// True while the polling task polls (or has been told to start).
    polling: AtomicBool,
    start: Notify,
}

impl BusyPoll {
    /// A window of `window` after each touch; zero: never poll.
    pub(crate) fn new(window: Duration) -> BusyPoll {
        BusyPoll {
            window,
            origin: Instant::now(),
            until: AtomicU64::new(0),
            polling: AtomicBool::new(false),
            start: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Node-to-node traffic happened or is expected: poll for the next window.
    pub(crate) fn touch(&self) {
        if self.window.is_zero() {
            return;
        }
        let window = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        self.until
            .store(self.now().saturating_add(window), Ordering::Release);
        if !self.polling.load(Ordering::Acquire) && !self.polling.swap(true, Ordering::AcqRel) {
            self.start.notify_one();
        }
    }

    fn in_window(&self) -> bool {
        self.now() < self.until.load(Ordering::Acquire)
    }

    /// The polling task (runs on the network thread for the node's life): each turn of the
    /// loop gives the runtime a non-blocking poll of every socket.
    pub(crate) async fn run(&self) {
        if self.window.is_zero() {
            return;
        }
        loop {
            self.start.notified().await;
            loop {
                while self.in_window() {
                    tokio::task::yield_now().await;
                    std::thread::yield_now();
                }
                self.polling.store(false, Ordering::SeqCst);
                // A touch between the last check and the store above found `polling` still
                // set and did not notify: take the window it opened here (unless a later
                // touch has notified, which the wait above then takes).
                if !self.in_window() || self.polling.swap(true, Ordering::AcqRel) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_opens_a_window_that_closes() {
        let busy = BusyPoll::new(Duration::from_millis(20));
        assert!(!busy.in_window());
        busy.touch();
        assert!(busy.in_window());
        assert!(busy.polling.load(Ordering::Acquire));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!busy.in_window());
    }

    #[test]
    fn a_zero_window_never_polls() {
        let busy = BusyPoll::new(Duration::ZERO);
        busy.touch();
        assert!(!busy.in_window());
        assert!(!busy.polling.load(Ordering::Acquire));
    }

    #[test]
    fn the_task_polls_through_the_window_then_waits_for_the_next_touch() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let busy = std::sync::Arc::new(BusyPoll::new(Duration::from_millis(5)));
        runtime.block_on(async {
            let task = tokio::spawn({
                let busy = busy.clone();
                async move { busy.run().await }
            });
            for _ in 0..3 {
                busy.touch();
                // Bounded wait for the task to finish polling the window.
                let deadline = Instant::now() + Duration::from_secs(10);
                while busy.polling.load(Ordering::SeqCst) {
                    assert!(Instant::now() < deadline, "the polling never stopped");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                assert!(!busy.in_window());
            }
            task.abort();
        });
    }
}
