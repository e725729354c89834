//! Node time and pending timeouts (the clock half of skynet's `skynet_timer.c`).
//!
//! `now` is centiseconds since the node started, advanced by the timer thread (its loop is
//! the node's, in node.rs) from the monotonic clock every 2.5 ms (as skynet's
//! `skynet_updatetime`); timeouts are counted in the same ticks, so a timeout of `n` fires
//! when `now` has advanced by `n`. The wheel itself is the pure [`crate::timer::TimerWheel`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skywasm_abi::Handle;

use crate::sync::lock;
use crate::timer::TimerWheel;

/// Fewest timeouts of ended services worth a sweep of the wheel.
const SWEEP_MIN: usize = 1024;

/// How often the timer thread wakes (skynet's `usleep(2500)`).
pub(crate) const TIMER_PERIOD: Duration = Duration::from_micros(2500);

/// What a timeout wakes (a service): a sweep keeps a timeout only while its owner lives.
pub trait Owner {
    /// False once the owner has ended.
    fn is_alive(&self) -> bool;
}

/// A pending timeout: who gets it, its session, and the index of the tenant it counts
/// against.
pub struct Timeout<O> {
    /// The service to wake.
    pub handle: Handle,
    /// That very service (a handle may name another service once this one has ended).
    pub owner: Weak<O>,
    /// The session its PTYPE_RESPONSE carries.
    pub session: i32,
    /// The owner's tenant (its index among the node's tenants).
    pub tenant: usize,
}

/// The node's clock and its pending timeouts.
pub struct Clock<O> {
    started: Instant,
    start_utc_secs: u64,
    /// Centiseconds since start, as last advanced by the timer thread.
    now: AtomicU64,
    wheel: Mutex<TimerWheel<Timeout<O>>>,
    /// Timeouts of ended services still in the wheel (approximately): past half of the
    /// wheel, the timer thread sweeps them out.
    orphaned: AtomicUsize,
}

impl<O: Owner> Default for Clock<O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: Owner> Clock<O> {
    /// A clock starting now.
    pub fn new() -> Clock<O> {
        Clock {
            started: Instant::now(),
            start_utc_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            now: AtomicU64::new(0),
            wheel: Mutex::new(TimerWheel::new()),
            orphaned: AtomicUsize::new(0),
        }
    }

    /// Notes `count` timeouts of a service that ended: they stay in the wheel, counted for
    /// nobody, until they fire or a sweep takes them out.
    pub fn orphan(&self, count: usize) {
        self.orphaned.fetch_add(count, Ordering::Relaxed);
    }

    /// Takes the timeouts of ended services out of the wheel once they are over half of it
    /// (and at least `SWEEP_MIN`): each sweep passes over the whole wheel, so it runs
    /// only after at least as many timeouts ended as stay. Returns how many it took out.
    pub fn sweep_if_due(&self) -> usize {
        let orphaned = self.orphaned.load(Ordering::Relaxed);
        if orphaned < SWEEP_MIN {
            return 0;
        }
        let mut wheel = lock(&self.wheel);
        if orphaned * 2 < wheel.len() {
            return 0;
        }
        self.orphaned.store(0, Ordering::Relaxed);
        wheel.retain(|timeout| {
            timeout
                .owner
                .upgrade()
                .is_some_and(|owner| owner.is_alive())
        })
    }

    /// Centiseconds since the node started.
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// The node's start time, UTC seconds since the epoch.
    pub fn start_time(&self) -> u64 {
        self.start_utc_secs
    }

    /// Nanoseconds of a monotonic counter (skynet's `hpc`).
    pub fn hpc(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Schedules a PTYPE_RESPONSE with `session` to `handle` after `ticks` centiseconds
    /// (`ticks` ≥ 1; 0-tick timeouts are delivered as messages by the caller).
    pub fn add_timeout(&self, ticks: u32, timeout: Timeout<O>) {
        lock(&self.wheel).add(ticks, timeout);
    }

    /// Number of pending timeouts.
    pub fn pending(&self) -> usize {
        lock(&self.wheel).len()
    }

    /// Advances the wheel to the monotonic clock; returns the expired timeouts in order.
    pub fn update(&self) -> Vec<Timeout<O>> {
        let elapsed_cs = (self.started.elapsed().as_millis() / 10) as u64;
        let mut fired = Vec::new();
        let mut wheel = lock(&self.wheel);
        let mut now = self.now.load(Ordering::Acquire);
        while now < elapsed_cs {
            wheel.tick(&mut fired);
            now += 1;
            self.now.store(now, Ordering::Release);
        }
        fired
    }
}

/// CPU time of the calling thread in nanoseconds (for `profile = true`).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass; CLOCK_THREAD_CPUTIME_ID is
    // always available on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
