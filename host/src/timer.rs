//! The timer wheel (skynet's `skynet_timer.c`): centisecond ticks, hierarchical slots.
//!
//! [`TimerWheel`] is pure: it knows ticks, not clocks, so it is tested without sleeping. The
//! node's timer thread turns elapsed monotonic time into ticks and calls
//! [`TimerWheel::advance`].
//!
//! Layout, as skynet: a *near* wheel of 256 one-tick slots, then four levels of 64 slots, each
//! level covering 64 times the span of the one below. A timer goes into the lowest level whose
//! span contains both now and its expiry; when time crosses a level boundary, that level's
//! next slot cascades down. Slots are FIFO lists and cascading keeps their order, so timers
//! with the same expiry fire in the order they were added.

use std::collections::VecDeque;

const NEAR_SHIFT: u32 = 8;
const NEAR: usize = 1 << NEAR_SHIFT;
const NEAR_MASK: u32 = NEAR as u32 - 1;
const LEVEL_SHIFT: u32 = 6;
const LEVEL: usize = 1 << LEVEL_SHIFT;
const LEVEL_MASK: u32 = LEVEL as u32 - 1;
const LEVELS: usize = 4;

/// A hierarchical timing wheel over a 32-bit tick counter.
#[derive(Debug)]
pub struct TimerWheel<T> {
    near: Vec<VecDeque<Entry<T>>>,
    levels: Vec<Vec<VecDeque<Entry<T>>>>,
    /// The current tick (wraps after 2^32 ticks, about 497 days at 100 ticks/s).
    time: u32,
    len: usize,
}

#[derive(Debug)]
struct Entry<T> {
    expire: u32,
    payload: T,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        TimerWheel {
            near: (0..NEAR).map(|_| VecDeque::new()).collect(),
            levels: (0..LEVELS)
                .map(|_| (0..LEVEL).map(|_| VecDeque::new()).collect())
                .collect(),
            time: 0,
            len: 0,
        }
    }

    /// The current tick.
    pub fn now(&self) -> u32 {
        self.time
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `payload` to fire `ticks` ticks from now. A delay of 0 fires at the next tick
    /// (skynet delivers 0-tick timeouts as plain messages instead, and so does the node; the
    /// wheel still handles it sanely).
    pub fn add(&mut self, ticks: u32, payload: T) {
        // The current tick's slot has already fired: the earliest possible expiry is the next.
        let expire = self.time.wrapping_add(ticks.max(1));
        self.len += 1;
        self.place(Entry { expire, payload });
    }

    fn place(&mut self, entry: Entry<T>) {
        let expire = entry.expire;
        let time = self.time;
        if expire | NEAR_MASK == time | NEAR_MASK {
            self.near[(expire & NEAR_MASK) as usize].push_back(entry);
            return;
        }
        let mut mask: u32 = (NEAR as u32) << LEVEL_SHIFT;
        let mut level = 0;
        while level < LEVELS - 1 {
            if expire | (mask - 1) == time | (mask - 1) {
                break;
            }
            mask <<= LEVEL_SHIFT;
            level += 1;
        }
        let slot = (expire >> (NEAR_SHIFT + level as u32 * LEVEL_SHIFT)) & LEVEL_MASK;
        self.levels[level][slot as usize].push_back(entry);
    }

    /// Drops every pending timer for which `keep` is false (in place, order kept); returns
    /// how many it dropped. Costs a pass over every slot and timer.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let before = self.len;
        for slot in self.near.iter_mut().chain(self.levels.iter_mut().flatten()) {
            slot.retain(|entry| keep(&entry.payload));
        }
        self.len = self
            .near
            .iter()
            .chain(self.levels.iter().flatten())
            .map(VecDeque::len)
            .sum();
        before - self.len
    }

    /// Advances one tick and appends every timer that expires at the new tick to `fired`, in
    /// expiry-then-registration order.
    pub fn tick(&mut self, fired: &mut Vec<T>) {
        self.shift();
        let slot = (self.time & NEAR_MASK) as usize;
        let expired = std::mem::take(&mut self.near[slot]);
        self.len -= expired.len();
        fired.extend(expired.into_iter().map(|e| e.payload));
    }

    /// Advances `ticks` ticks; returns the fired payloads in order.
    pub fn advance(&mut self, ticks: u32) -> Vec<T> {
        let mut fired = Vec::new();
        for _ in 0..ticks {
            self.tick(&mut fired);
        }
        fired
    }

    /// Moves the clock one tick and cascades the level slot whose span begins now.
    fn shift(&mut self) {
        self.time = self.time.wrapping_add(1);
        let ct = self.time;
        if ct == 0 {
            self.cascade(LEVELS - 1, 0);
            return;
        }
        let mut time = ct >> NEAR_SHIFT;
        let mut mask: u32 = NEAR as u32;
        let mut level = 0;
        while ct & (mask - 1) == 0 && level < LEVELS {
            let index = (time & LEVEL_MASK) as usize;
            if index != 0 {
                self.cascade(level, index);
                break;
            }
            mask <<= LEVEL_SHIFT;
            time >>= LEVEL_SHIFT;
            level += 1;
        }
    }

    fn cascade(&mut self, level: usize, index: usize) {
        let entries = std::mem::take(&mut self.levels[level][index]);
        for entry in entries {
            self.place(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fires_at_the_right_tick() {
        let mut wheel = TimerWheel::new();
        wheel.add(1, "a");
        wheel.add(3, "b");
        assert_eq!(wheel.advance(1), vec!["a"]);
        assert_eq!(wheel.advance(1), Vec::<&str>::new());
        assert_eq!(wheel.advance(1), vec!["b"]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn zero_ticks_fire_at_the_next_tick() {
        let mut wheel = TimerWheel::new();
        wheel.add(0, 1);
        assert_eq!(wheel.advance(1), vec![1]);
    }

    #[test]
    fn same_deadline_fires_in_registration_order_across_levels() {
        let mut wheel = TimerWheel::new();
        // Registered far apart in time so they start in different levels.
        wheel.add(70_000, 0);
        wheel.advance(300);
        wheel.add(70_000 - 300, 1);
        wheel.advance(16_000);
        wheel.add(70_000 - 16_300, 2);
        let fired = wheel.advance(70_000 - 16_300);
        assert_eq!(fired, vec![0, 1, 2]);
    }

    #[test]
    fn long_delays_on_every_level() {
        let mut wheel = TimerWheel::new();
        let delays = [255, 256, 16_383, 16_384, 1 << 20, (1 << 26) + 5];
        for d in delays {
            wheel.add(d, d);
        }
        let mut fired_at = Vec::new();
        let mut out = Vec::new();
        for t in 1..=((1u32 << 26) + 5) {
            wheel.tick(&mut out);
            for d in out.drain(..) {
                fired_at.push((d, t));
            }
        }
        assert_eq!(
            fired_at,
            delays.iter().map(|d| (*d, *d)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn retain_drops_timers_on_every_level_and_keeps_the_order_of_the_rest() {
        let mut wheel = TimerWheel::new();
        for (n, delay) in [(1, 5), (2, 300), (3, 20_000), (4, 5), (5, 2_000_000)] {
            wheel.add(delay, n);
        }
        assert_eq!(wheel.retain(|n| n % 2 == 1), 2);
        assert_eq!(wheel.len(), 3);
        let mut fired = Vec::new();
        while !wheel.is_empty() {
            wheel.tick(&mut fired);
        }
        assert_eq!(fired, vec![1, 3, 5]);
    }

    #[test]
    fn the_tick_counter_wraps() {
        let mut wheel = TimerWheel::new();
        wheel.time = u32::MAX - 10;
        wheel.add(20, "wrapped");
        assert_eq!(wheel.advance(19), Vec::<&str>::new());
        assert_eq!(wheel.advance(1), vec!["wrapped"]);
    }

    proptest! {
        /// Any interleaving of adds and advances fires each timer exactly once, at
        /// registration tick + delay, ordered by (expiry, registration).
        #[test]
        fn fires_in_expiry_then_registration_order(
            ops in proptest::collection::vec((0u32..40_000, 0u32..600), 1..60)
        ) {
            let mut wheel = TimerWheel::new();
            let mut expected = Vec::new();
            let mut fired = Vec::new();
            let mut now = 0u64;
            for (id, (delay, advance)) in ops.iter().enumerate() {
                wheel.add(*delay, id);
                expected.push((now + (*delay).max(1) as u64, id));
                for _ in 0..*advance {
                    now += 1;
                    let mut out = Vec::new();
                    wheel.tick(&mut out);
                    fired.extend(out.into_iter().map(|id| (now, id)));
                }
            }
            while !wheel.is_empty() {
                now += 1;
                let mut out = Vec::new();
                wheel.tick(&mut out);
                fired.extend(out.into_iter().map(|id| (now, id)));
            }
            expected.sort();
            prop_assert_eq!(fired, expected);
        }
    }
}
