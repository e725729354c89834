//! What an operator watches a node by: the figures the host keeps about itself, its tenants
//! and its busiest services, read without asking any guest — served in the Prometheus text
//! format on `metrics` (docs/operations.md) and shown by the console's `top`, `tenants` and
//! `stat`.
//!
//! The message path pays almost nothing for them. Message counts are plain stores by the
//! worker holding the service's queue; busy time is *sampled* by the monitor thread, which
//! already looks at every worker every 10 ms: each look that finds a worker inside a
//! message counts 10 ms for that service and its tenant, so no clock is read per message.
//! The two latency histograms time one message (and one wait in the global queue) in
//! [`SAMPLE_EVERY`]. Everything else is read
//! when someone looks ([`snapshot`]).
//!
//! - [`snapshot`]: one reading of the node (tenants, the services worth naming, peers).
//! - [`exposition`]: that reading in the Prometheus text format (`prometheus-client`).
//! - [`endpoint`]: the HTTP endpoint serving it, on a thread of its own.
//! - [`console`]: the console's `top`, `tenants` and `stat`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use skywasm_abi::Handle;

use crate::sync::lock;
use crate::tenant::{ByKind, Kind};

pub(crate) mod console;
pub(crate) mod endpoint;
pub(crate) mod exposition;
pub(crate) mod snapshot;

/// One message in this many is timed for the latency histograms: a prime, so that a worker
/// alternating between two kinds of message (a request, its reply) times both.
pub const SAMPLE_EVERY: usize = 61;

/// How long one window of busy samples lasts, and how many the node keeps: `top` and the
/// per-service series rank services by their busy time over the last few windows.
const WINDOW: Duration = Duration::from_secs(1);
const WINDOWS: usize = 10;

/// Histogram buckets of the message path's timings and cluster calls: 1 µs to about 4 s,
/// ×4 each.
pub(crate) fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(1e-6, 4.0, 12)
}

/// The sampled timings of the message path (the scheduler keeps them).
#[derive(Debug)]
pub struct Timings {
    /// Where [`Timings::now`] counts from.
    epoch: Instant,
    /// A ready service's wait in the global queue for a worker.
    pub schedule_delay: Histogram,
    /// One message's dispatch.
    pub dispatch: Histogram,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            epoch: Instant::now(),
            schedule_delay: Histogram::new(latency_buckets()),
            dispatch: Histogram::new(latency_buckets()),
        }
    }
}

impl Timings {
    /// Nanoseconds since the scheduler started, never 0 (0 marks "not sampled").
    pub fn now(&self) -> u64 {
        (self.epoch.elapsed().as_nanos() as u64) | 1
    }

    /// Records the wait of a queue made ready at `since` ([`Timings::now`]).
    pub fn waited_since(&self, since: u64) {
        let waited = self.now().saturating_sub(since);
        self.schedule_delay.observe(waited as f64 / 1e9);
    }
}

/// How a hot upgrade ended, for `skywasm_upgrades_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeOutcome {
    /// The new code took the old code's state.
    Restored,
    /// The new code started fresh.
    Fresh,
    /// The old code carries on.
    Failed,
}

impl Kind for UpgradeOutcome {
    const ALL: &'static [UpgradeOutcome] = &[
        UpgradeOutcome::Restored,
        UpgradeOutcome::Fresh,
        UpgradeOutcome::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            UpgradeOutcome::Restored => "restored",
            UpgradeOutcome::Fresh => "fresh",
            UpgradeOutcome::Failed => "failed",
        }
    }
}

/// The node's own counters for the metrics, and the monitor's busy samples.
#[derive(Debug)]
pub struct Metrics {
    /// Upgrades by outcome.
    pub upgrades: ByKind<UpgradeOutcome, 3>,
    /// Busy nanoseconds per worker (the last entry: the network thread's assist).
    worker_busy: Vec<AtomicU64>,
    /// Busy nanoseconds per service over the last windows, for ranking by recent busy time.
    recent: Mutex<RecentBusy>,
    /// The highest value each counter was exposed with, so one that a service's end makes
    /// dip for a moment (its counts move from the service to its tenant) never goes back.
    exposed: Mutex<HashMap<String, u64>>,
    /// Where the endpoint listens, once it does: no untrusted service may connect there.
    pub endpoint: OnceLock<std::net::SocketAddr>,
}

impl Metrics {
    /// Counters for a node of `workers` workers.
    pub fn new(workers: usize) -> Metrics {
        Metrics {
            upgrades: Default::default(),
            worker_busy: (0..=workers).map(|_| AtomicU64::new(0)).collect(),
            recent: Mutex::new(RecentBusy::default()),
            exposed: Mutex::new(HashMap::new()),
            endpoint: OnceLock::new(),
        }
    }

    /// The monitor found worker `worker` running a message of `service`, `ns` nanoseconds
    /// after its look before.
    pub fn sample_busy(&self, worker: usize, service: Handle, ns: u64) {
        if let Some(counter) = self.worker_busy.get(worker) {
            counter.fetch_add(ns, Ordering::Relaxed);
        }
        lock(&self.recent).note(service, ns, Instant::now());
    }

    /// Busy time per worker so far, in nanoseconds.
    pub fn worker_busy(&self) -> Vec<u64> {
        self.worker_busy
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    /// Busy nanoseconds of each service seen busy over the last `span` (at most
    /// [`WINDOWS`] × [`WINDOW`]), and the time they cover.
    pub fn recent_busy(&self, span: Duration) -> (HashMap<Handle, u64>, Duration) {
        lock(&self.recent).over(span, Instant::now())
    }

    /// `value` for the counter `key`, or the highest value exposed for it before.
    pub fn monotonic(&self, key: &str, value: u64) -> u64 {
        let mut exposed = lock(&self.exposed);
        let highest = exposed.entry(key.to_string()).or_insert(0);
        *highest = (*highest).max(value);
        *highest
    }
}

/// Busy nanoseconds by service, in windows of [`WINDOW`], the last [`WINDOWS`] of them.
#[derive(Debug, Default)]
struct RecentBusy {
    windows: VecDeque<(Instant, HashMap<Handle, u64>)>,
}

impl RecentBusy {
    fn note(&mut self, service: Handle, ns: u64, now: Instant) {
        let fresh = self
            .windows
            .back()
            .is_none_or(|(start, _)| now.duration_since(*start) >= WINDOW);
        if fresh {
            if self.windows.len() == WINDOWS {
                self.windows.pop_front();
            }
            self.windows.push_back((now, HashMap::new()));
        }
        if let Some((_, counts)) = self.windows.back_mut() {
            *counts.entry(service).or_insert(0) += ns;
        }
    }

    /// The busy time of the windows that started within `span` before `now`, and the time
    /// from the first of them to `now`.
    fn over(&self, span: Duration, now: Instant) -> (HashMap<Handle, u64>, Duration) {
        let mut total = HashMap::new();
        let mut covered = Duration::ZERO;
        for (start, counts) in self.windows.iter().rev() {
            let age = now.duration_since(*start);
            if age > span + WINDOW {
                break;
            }
            covered = age;
            for (service, n) in counts {
                *total.entry(*service).or_insert(0) += n;
            }
        }
        (total, covered.max(WINDOW.min(span)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_busy_keeps_the_last_windows_and_adds_them_up() {
        let mut recent = RecentBusy::default();
        let start = Instant::now();
        let (a, b) = (Handle(1), Handle(2));
        for second in 0..15u64 {
            let at = start + Duration::from_secs(second);
            recent.note(a, 1, at);
            if second >= 13 {
                recent.note(b, 1, at);
                recent.note(b, 1, at + Duration::from_millis(10));
            }
        }
        assert_eq!(recent.windows.len(), WINDOWS, "old windows are dropped");
        let now = start + Duration::from_secs(14) + Duration::from_millis(500);
        let (two, covered) = recent.over(Duration::from_secs(2), now);
        // The windows of seconds 12, 13 and 14 start within 2 s (+ one window) of now.
        assert_eq!(two.get(&a), Some(&3));
        assert_eq!(two.get(&b), Some(&4));
        assert!(covered >= Duration::from_secs(2), "{covered:?}");
        let (all, _) = recent.over(Duration::from_secs(3600), now);
        assert_eq!(all.get(&a), Some(&(WINDOWS as u64)));
    }

    #[test]
    fn exposed_counters_never_go_back() {
        let metrics = Metrics::new(2);
        assert_eq!(metrics.monotonic("x", 5), 5);
        assert_eq!(metrics.monotonic("x", 3), 5, "a dip is not shown");
        assert_eq!(metrics.monotonic("x", 9), 9);
        assert_eq!(metrics.monotonic("y", 1), 1, "each counter has its own");
    }

    #[test]
    fn upgrades_and_busy_samples_are_counted() {
        let metrics = Metrics::new(1);
        metrics.upgrades.add(UpgradeOutcome::Fresh);
        metrics.upgrades.add(UpgradeOutcome::Failed);
        metrics.upgrades.add(UpgradeOutcome::Failed);
        let upgrades: Vec<_> = metrics
            .upgrades
            .counts()
            .map(|(o, n)| (o.label(), n))
            .collect();
        assert_eq!(upgrades, [("restored", 0), ("fresh", 1), ("failed", 2)]);
        metrics.sample_busy(0, Handle(7), 10);
        metrics.sample_busy(1, Handle(7), 12);
        metrics.sample_busy(5, Handle(8), 9);
        assert_eq!(metrics.worker_busy(), [10, 12]);
        let (recent, _) = metrics.recent_busy(Duration::from_secs(1));
        assert_eq!(recent.get(&Handle(7)), Some(&22));
        assert_eq!(recent.get(&Handle(8)), Some(&9));
    }
}
