//! One word per service for the work only the holder of its queue may do, and for where the
//! service is in its life.
//!
//! # The protocol
//!
//! A service's code runs only on the thread that *holds* its queue (a worker took it from
//! the global queue; `crate::mq`'s in-global invariant makes that thread unique). Work on
//! the instance that someone else asks for — run a deferred init (`START`), deliver a
//! `SIGNAL`, swap the code (`UPGRADE`), finalize an ended service (`DEAD`) — is therefore
//! not done by the asker but *asked*:
//!
//! 1. the asker sets its bit with one `fetch_or` (a signal also stores its number, in the
//!    same word), then calls the queue's `schedule`; when that finds the queue idle it
//!    makes the service ready, and a worker will hold it;
//! 2. the holder reads the word before its first message and after each one, and takes a
//!    bit (clearing it) *before* doing its work, so work asked again meanwhile is done
//!    again rather than lost;
//! 3. when the holder lets the queue go (the queue is found empty: it leaves global), it
//!    reads the word once more; if work is still owed it schedules the queue itself.
//!
//! Why nothing is forgotten: the queue's `schedule` and its release take the queue's lock.
//! If the asker's `schedule` came first, it found the queue held and did nothing, but its
//! bit was set before it, so the holder's read after the release sees it (the lock orders
//! them) and schedules. If the release came first, the asker's `schedule` finds the queue
//! idle and schedules. If both schedule, the queue's lock lets only one of them flip it, so
//! the queue is never in the global queue twice. `tests` below checks this by running every
//! interleaving of these steps on a real service.
//!
//! `DEAD` is never cleared; `FINALIZED` follows it once, set by the holder that finalized
//! the service, after which nothing is owed any more. The interrupt of a *running* call
//! (`KILL`, `SIGNAL 0`, the CPU limit) is not pending work and is not here: the service's
//! call numbers, read by the epoch check, stop exactly the call that was running.

use std::sync::atomic::{AtomicU64, Ordering};

/// Work and life-state bits of one service (the low half of its word; the high half holds
/// the number of a pending signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bits(u32);

impl Bits {
    /// An init left to a worker (a deferred launch) has not run yet.
    pub(crate) const START: Bits = Bits(1);
    /// A `SIGNAL` waits to be delivered.
    pub(crate) const SIGNAL: Bits = Bits(1 << 1);
    /// An upgrade waits to run between two messages.
    pub(crate) const UPGRADE: Bits = Bits(1 << 2);
    /// The service ended (exit, kill, fault, abort); never cleared.
    pub(crate) const DEAD: Bits = Bits(1 << 3);
    /// The holder finalized the ended service; never cleared.
    pub(crate) const FINALIZED: Bits = Bits(1 << 4);
    /// Its deferred init failed: it never started (the launcher is told so).
    pub(crate) const NEVER_STARTED: Bits = Bits(1 << 5);
    /// Its instance can stop its own work when told of `SIGNAL 0` (`skywasm_interrupt`).
    pub(crate) const INTERRUPTIBLE: Bits = Bits(1 << 6);

    /// Work the holder of the queue owes: the bits that make it visit the service.
    const OWED: u32 = Bits::START.0 | Bits::SIGNAL.0 | Bits::UPGRADE.0 | Bits::DEAD.0;

    /// Any of these bits.
    pub(crate) const fn or(self, other: Bits) -> Bits {
        Bits(self.0 | other.0)
    }
}

/// A snapshot of a service's word, read once and tested bit by bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Pending(u64);

impl Pending {
    /// A word with nothing set.
    #[cfg(test)]
    pub(crate) const NONE: Pending = Pending(0);

    /// True when any of `bits` is set.
    pub(crate) fn has(self, bits: Bits) -> bool {
        self.0 & u64::from(bits.0) != 0
    }

    /// True when none of the bits that send the holder to the slow path is set: nothing
    /// to start, signal, upgrade or finalize (the message path's one test).
    pub(crate) fn is_quiet(self) -> bool {
        self.0 & u64::from(Bits::OWED) == 0
    }

    /// True when the holder owes work: asked work, or an end not finalized yet.
    pub(crate) fn owes(self) -> bool {
        !self.is_quiet() && !self.has(Bits::FINALIZED)
    }
}

/// The word itself.
#[derive(Debug, Default)]
pub(crate) struct Work(AtomicU64);

/// The low half of the word: the bits.
const BITS_MASK: u64 = 0xffff_ffff;

impl Work {
    /// The word now.
    pub(crate) fn read(&self) -> Pending {
        Pending(self.0.load(Ordering::Acquire))
    }

    /// Sets `bits`; true when none of them was set before.
    pub(crate) fn set(&self, bits: Bits) -> bool {
        let before = self.0.fetch_or(u64::from(bits.0), Ordering::AcqRel);
        before & u64::from(bits.0) == 0
    }

    /// Clears `bits`; true when any of them was set (the caller takes that work).
    pub(crate) fn take(&self, bits: Bits) -> bool {
        let before = self.0.fetch_and(!u64::from(bits.0), Ordering::AcqRel);
        before & u64::from(bits.0) != 0
    }

    /// Stores `signal` with the SIGNAL bit; it replaces a signal not delivered yet.
    pub(crate) fn post_signal(&self, signal: i32) {
        let number = u64::from(signal as u32) << 32;
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some(number | (word & BITS_MASK) | u64::from(Bits::SIGNAL.0))
            });
    }

    /// Takes the signal stored by [`Work::post_signal`], if any: the bit and the number
    /// are read and cleared together, so a signal posted meanwhile is delivered after it,
    /// never lost nor doubled.
    pub(crate) fn take_signal(&self) -> Option<i32> {
        let signal = u64::from(Bits::SIGNAL.0);
        let before = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word & signal != 0).then_some(word & BITS_MASK & !signal)
            })
            .ok()?;
        Some((before >> 32) as u32 as i32)
    }
}

#[cfg(test)]
mod tests;
