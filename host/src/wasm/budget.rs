//! The CPU budget of the guest work a thread runs for one outermost call.
//!
//! A call into a guest (init, message, signal, snapshot) may enter a second store on the
//! same thread — a `LAUNCH` runs the new service's init inside the launching message — and
//! that nested work must not get a fresh budget: one message could otherwise hold its worker
//! for its CPU limit once per nesting level. So the count lives here, per thread: the
//! outermost call starts it at zero with its own limit; a nested call keeps counting on the
//! same total and may use at most its own limit *and* no more than what the calls around it
//! have left. Whatever charges time — the epoch callback for running guest code (one
//! [`crate::monitor::EPOCH_PERIOD`] per tick), a host function that waited — adds to it.
//!
//! Invariant: entries and exits nest (each [`Budget::enter`] returns a guard that restores
//! the outer state when dropped), so the count of an outer call includes all its nested
//! work when it resumes.
//!
//! Interruption follows the same nesting: [`Enclosing`] records the services whose calls
//! enclose the current one, so `KILL` of the launching service stops the init it runs.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use crate::service::Service;

thread_local! {
    static CURRENT: Cell<Frame> = const { Cell::new(Frame::IDLE) };
    /// The services whose running calls enclose the guest calls this thread makes now,
    /// outermost first (a message that LAUNCHes, an init that LAUNCHes in turn).
    static ENCLOSING: RefCell<Vec<Arc<Service>>> = const { RefCell::new(Vec::new()) };
}

/// While it lives, the running call of a service encloses the guest calls this thread
/// makes (the init of a service it launches): stopping that call (`KILL`, `SIGNAL 0`)
/// stops them too, at their next check.
#[must_use = "the call encloses others while the guard lives"]
pub(crate) struct Enclosing(());

impl Enclosing {
    /// `service`'s running call now encloses what this thread runs.
    pub(crate) fn enter(service: Arc<Service>) -> Enclosing {
        ENCLOSING.with_borrow_mut(|enclosing| enclosing.push(service));
        Enclosing(())
    }

    /// True when the running call of a service enclosing this thread's work was stopped.
    pub(crate) fn interrupted() -> bool {
        ENCLOSING.with_borrow(|enclosing| enclosing.iter().any(|s| s.should_interrupt()))
    }
}

impl Drop for Enclosing {
    fn drop(&mut self) {
        ENCLOSING.with_borrow_mut(|enclosing| enclosing.pop());
    }
}

/// The state of the innermost guest call running on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    /// Nesting depth; 0 = no guest call runs on this thread.
    depth: u32,
    /// Microseconds charged since the outermost call began.
    used_us: u64,
    /// Where the innermost call must stop, in the same count.
    limit_us: u64,
    /// Microseconds charged by host calls since the last epoch tick: the tick, which
    /// covers the whole period, charges only what they did not.
    waited_us: u64,
    /// Whether `limit_us` is that call's own limit rather than one inherited from a call
    /// around it (for the message saying which ran out).
    own_limit: bool,
}

impl Frame {
    const IDLE: Frame = Frame {
        depth: 0,
        used_us: 0,
        limit_us: u64::MAX,
        waited_us: 0,
        own_limit: true,
    };
}

/// Restores the budget of the calls around a guest call when it ends.
#[must_use = "the budget applies while the guard lives"]
pub(crate) struct Budget {
    outer: Frame,
}

/// Which limit a call ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exhausted {
    /// Its own CPU limit.
    Own,
    /// What the call that (directly or not) started it had left.
    Outer,
}

impl Budget {
    /// Starts a guest call whose own CPU limit is `limit`; nested in a running call, it
    /// gets the smaller of that and what the running call has left.
    #[inline]
    pub(crate) fn enter(limit: Duration) -> Budget {
        let own = micros(limit);
        let outer = CURRENT.get();
        let inner = if outer.depth == 0 {
            Frame {
                depth: 1,
                used_us: 0,
                limit_us: own,
                waited_us: 0,
                own_limit: true,
            }
        } else {
            let mine = outer.used_us.saturating_add(own);
            Frame {
                depth: outer.depth + 1,
                used_us: outer.used_us,
                limit_us: mine.min(outer.limit_us),
                waited_us: outer.waited_us,
                own_limit: mine <= outer.limit_us,
            }
        };
        CURRENT.set(inner);
        Budget { outer }
    }

    /// Charges one epoch tick of running guest code (`period`) to the running call, less
    /// what host calls already charged within it; the limit it ran out of, if it did.
    pub(crate) fn tick(period: Duration) -> Result<(), Exhausted> {
        let mut frame = CURRENT.get();
        let period = micros(period);
        let ran = period.saturating_sub(frame.waited_us);
        frame.waited_us = 0;
        CURRENT.set(frame);
        Self::add(ran)
    }

    /// Charges `spent` in a host call (a wait) to the running call; the limit it ran out
    /// of, if it did.
    pub(crate) fn charge(spent: Duration) -> Result<(), Exhausted> {
        let spent = micros(spent);
        let mut frame = CURRENT.get();
        frame.waited_us = frame.waited_us.saturating_add(spent);
        CURRENT.set(frame);
        Self::add(spent)
    }

    fn add(spent_us: u64) -> Result<(), Exhausted> {
        let mut frame = CURRENT.get();
        if frame.depth == 0 {
            return Ok(());
        }
        frame.used_us = frame.used_us.saturating_add(spent_us);
        CURRENT.set(frame);
        if frame.used_us <= frame.limit_us {
            Ok(())
        } else if frame.own_limit {
            Err(Exhausted::Own)
        } else {
            Err(Exhausted::Outer)
        }
    }

    /// What the running call may still spend (unbounded outside any call).
    pub(crate) fn left() -> Duration {
        let frame = CURRENT.get();
        if frame.depth == 0 {
            return Duration::MAX;
        }
        Duration::from_micros(frame.limit_us.saturating_sub(frame.used_us))
    }
}

/// Whole microseconds in `d`, without 128-bit arithmetic (this runs for every message).
fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

impl Drop for Budget {
    #[inline]
    fn drop(&mut self) {
        let inner = CURRENT.get();
        let restored = if self.outer.depth == 0 {
            Frame::IDLE
        } else {
            // The outer call resumes with everything its nested work spent.
            Frame {
                used_us: inner.used_us,
                waited_us: inner.waited_us,
                ..self.outer
            }
        };
        CURRENT.set(restored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_call_runs_out_of_its_own_limit() {
        let _call = Budget::enter(100 * MS);
        assert_eq!(Budget::charge(60 * MS), Ok(()));
        assert_eq!(Budget::left(), 40 * MS);
        assert_eq!(Budget::charge(40 * MS), Ok(()));
        assert_eq!(Budget::charge(MS), Err(Exhausted::Own));
    }

    #[test]
    fn nested_calls_share_the_outer_budget() {
        let outer = Budget::enter(100 * MS);
        Budget::charge(70 * MS).unwrap();
        {
            // Its own limit would be 1 s; the launching message has 30 ms left.
            let _inner = Budget::enter(1000 * MS);
            assert_eq!(Budget::left(), 30 * MS);
            assert_eq!(Budget::charge(31 * MS), Err(Exhausted::Outer));
        }
        // The outer call resumes with what the nested one spent: it is out, too.
        assert_eq!(Budget::charge(Duration::ZERO), Err(Exhausted::Own));
        drop(outer);
        assert_eq!(Budget::left(), Duration::MAX);
        // Outside any call nothing is counted.
        assert_eq!(Budget::charge(1000 * MS), Ok(()));
    }

    #[test]
    fn a_nested_call_with_a_smaller_limit_runs_out_of_its_own() {
        let _outer = Budget::enter(1000 * MS);
        let _inner = Budget::enter(10 * MS);
        assert_eq!(Budget::left(), 10 * MS);
        assert_eq!(Budget::charge(11 * MS), Err(Exhausted::Own));
    }

    #[test]
    fn a_tick_charges_only_what_waits_in_its_period_did_not() {
        let _call = Budget::enter(100 * MS);
        // 9 ms waited, then the tick of the 10 ms period: 10 ms in all, not 19.
        Budget::charge(9 * MS).unwrap();
        Budget::tick(10 * MS).unwrap();
        assert_eq!(Budget::left(), 90 * MS);
        // A wait longer than the period: the tick adds nothing.
        Budget::charge(15 * MS).unwrap();
        Budget::tick(10 * MS).unwrap();
        assert_eq!(Budget::left(), 75 * MS);
        Budget::tick(10 * MS).unwrap();
        assert_eq!(Budget::left(), 65 * MS);
    }

    #[test]
    fn a_new_outermost_call_starts_from_zero() {
        {
            let _first = Budget::enter(10 * MS);
            let _ = Budget::charge(50 * MS);
        }
        let _second = Budget::enter(10 * MS);
        assert_eq!(Budget::left(), 10 * MS);
    }
}
