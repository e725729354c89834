//! `poll_oneoff`: the one WASI call that can wait. Descriptor subscriptions (the standard
//! streams) are ready at once; a wait on clock deadlines happens only if it fits in what is
//! left of the running call's CPU limit, in slices between which an interruption is
//! honoured, and is charged to the call.

use std::time::{Duration, Instant};

use wasmtime::Caller;

use super::{
    answer, errno, get_u32, get_u64, guest, now_ns, put_u32, range, Stdio, WasiHost, MAX_WRITE,
};
use crate::wasm::budget::Budget;

/// Most subscriptions one `poll_oneoff` takes (`EINVAL` beyond, as `poll` past its limit).
const MAX_SUBSCRIPTIONS: u32 = 4096;

/// How long a wait sleeps between two checks for an interruption.
const WAIT_SLICE: Duration = crate::monitor::EPOCH_PERIOD;

/// Sizes of the preview 1 structures `poll_oneoff` reads and writes.
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

/// Event types.
const EVENT_CLOCK: u8 = 0;
const EVENT_FD_READ: u8 = 1;
const EVENT_FD_WRITE: u8 = 2;

/// `subclockflags`: the timeout is an absolute time on the clock.
const ABSTIME: u16 = 1;

/// One event to report: the subscription's userdata, an errno, its type, bytes available,
/// and the hang-up flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Event {
    userdata: u64,
    error: u16,
    kind: u8,
    nbytes: u64,
    hangup: bool,
}

/// What one subscription asks: ready now, or a clock deadline that far away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Now(Event),
    After(Duration, Event),
}

/// Decodes subscription `bytes` (48 of them) against the guest's stdio.
fn subscription(bytes: &[u8], stdio: &Stdio) -> Option<Wanted> {
    let userdata = get_u64(bytes, 0)?;
    let kind = *bytes.get(8)?;
    let event = |error: i32, nbytes: u64, hangup: bool| Event {
        userdata,
        error: error as u16,
        kind,
        nbytes,
        hangup,
    };
    Some(match kind {
        EVENT_CLOCK => {
            let id = get_u32(bytes, 16)?;
            let timeout = get_u64(bytes, 24)?;
            let flags = u16::from_le_bytes(bytes.get(40..42)?.try_into().ok()?);
            let delay = match now_ns(id) {
                Err(errno) => return Some(Wanted::Now(event(errno, 0, false))),
                Ok(now) if flags & ABSTIME != 0 => timeout.saturating_sub(now),
                Ok(_) => timeout,
            };
            match delay {
                0 => Wanted::Now(event(errno::SUCCESS, 0, false)),
                ns => Wanted::After(Duration::from_nanos(ns), event(errno::SUCCESS, 0, false)),
            }
        }
        EVENT_FD_READ | EVENT_FD_WRITE => {
            let fd = get_u32(bytes, 16)?;
            let readable = kind == EVENT_FD_READ && fd == 0;
            let writable = kind == EVENT_FD_WRITE && (fd == 1 || fd == 2);
            Wanted::Now(if !stdio.is_open(fd) {
                event(errno::BADF, 0, false)
            } else if readable {
                // stdin is at its end at once.
                event(errno::SUCCESS, 0, true)
            } else if writable {
                event(errno::SUCCESS, MAX_WRITE as u64, false)
            } else {
                event(errno::BADF, 0, false)
            })
        }
        _ => return None,
    })
}

fn write_event(memory: &mut [u8], at: usize, event: &Event) {
    let slot = &mut memory[at..at + EVENT_SIZE];
    slot.fill(0);
    slot[0..8].copy_from_slice(&event.userdata.to_le_bytes());
    slot[8..10].copy_from_slice(&event.error.to_le_bytes());
    slot[10] = event.kind;
    slot[16..24].copy_from_slice(&event.nbytes.to_le_bytes());
    slot[24..26].copy_from_slice(&u16::from(event.hangup).to_le_bytes());
}

/// Waits for the first of the subscribed events. Descriptor events (stdio) are ready at
/// once; when only clock deadlines are asked for, the nearest is waited for if it fits in
/// what is left of the call's CPU limit (charged to it, interruptible every
/// [`WAIT_SLICE`]); otherwise `ENOTSUP` at once and a log line.
pub(super) fn poll_oneoff<T: WasiHost>(
    mut caller: Caller<'_, T>,
    subscriptions: u32,
    events: u32,
    count: u32,
    out: u32,
) -> wasmtime::Result<i32> {
    if count == 0 || count > MAX_SUBSCRIPTIONS {
        return Ok(errno::INVAL);
    }
    let Some((memory, state)) = guest(&mut caller) else {
        return Ok(errno::FAULT);
    };
    let n = count as usize;
    let (Some(ins), Some(outs), Some(_)) = (
        range(memory, subscriptions, n * SUBSCRIPTION_SIZE),
        range(memory, events, n * EVENT_SIZE),
        range(memory, out, 4),
    ) else {
        return Ok(errno::FAULT);
    };
    let mut wanted = Vec::with_capacity(n);
    for bytes in memory[ins].chunks_exact(SUBSCRIPTION_SIZE) {
        match subscription(bytes, state.stdio()) {
            Some(w) => wanted.push(w),
            None => return Ok(errno::INVAL),
        }
    }
    let mut ready: Vec<Event> = wanted
        .iter()
        .filter_map(|w| match w {
            Wanted::Now(event) => Some(*event),
            Wanted::After(..) => None,
        })
        .collect();
    if ready.is_empty() {
        let nearest = wanted
            .iter()
            .filter_map(|w| match w {
                Wanted::After(delay, _) => Some(*delay),
                Wanted::Now(_) => None,
            })
            .min()
            .unwrap_or_default();
        // One slice of margin: a sleep ends up to a slice late, and that is charged too.
        let left = Budget::left().saturating_sub(WAIT_SLICE);
        if nearest > left {
            state.refused(&format!(
                "poll_oneoff: a wait of {} ms is longer than the {} ms left of the CPU limit \
                 of this call; refused with ENOTSUP (a service sleeps with the `timeout` \
                 command)",
                nearest.as_millis(),
                left.as_millis()
            ));
            return Ok(errno::NOTSUP);
        }
        let waited = wait(&*state, nearest)?;
        Budget::charge(waited).map_err(|exhausted| state.out_of_budget(exhausted))?;
        ready = wanted
            .iter()
            .filter_map(|w| match w {
                Wanted::After(delay, event) if *delay <= waited => Some(*event),
                _ => None,
            })
            .collect();
    }
    let base = outs.start;
    for (index, event) in ready.iter().enumerate() {
        write_event(memory, base + index * EVENT_SIZE, event);
    }
    Ok(answer(put_u32(memory, out, ready.len() as u32)))
}

/// Sleeps for `delay`, in slices, ending early with the interruption's error.
fn wait<T: WasiHost>(state: &T, delay: Duration) -> wasmtime::Result<Duration> {
    let started = Instant::now();
    loop {
        if let Some(interrupted) = state.interruption() {
            return Err(interrupted);
        }
        let elapsed = started.elapsed();
        if elapsed >= delay {
            return Ok(elapsed);
        }
        std::thread::sleep((delay - elapsed).min(WAIT_SLICE));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CLOCK_MONOTONIC, CLOCK_REALTIME};
    use super::*;

    fn clock(userdata: u64, id: u32, timeout: u64, flags: u16) -> [u8; SUBSCRIPTION_SIZE] {
        let mut bytes = [0u8; SUBSCRIPTION_SIZE];
        bytes[0..8].copy_from_slice(&userdata.to_le_bytes());
        bytes[8] = EVENT_CLOCK;
        bytes[16..20].copy_from_slice(&id.to_le_bytes());
        bytes[24..32].copy_from_slice(&timeout.to_le_bytes());
        bytes[40..42].copy_from_slice(&flags.to_le_bytes());
        bytes
    }

    fn fd(userdata: u64, kind: u8, fd: u32) -> [u8; SUBSCRIPTION_SIZE] {
        let mut bytes = [0u8; SUBSCRIPTION_SIZE];
        bytes[0..8].copy_from_slice(&userdata.to_le_bytes());
        bytes[8] = kind;
        bytes[16..20].copy_from_slice(&fd.to_le_bytes());
        bytes
    }

    #[test]
    fn subscriptions_are_decoded_as_preview1_lays_them_out() {
        let stdio = Stdio::default();
        let forever = clock(7, CLOCK_MONOTONIC, u64::MAX >> 1, 0);
        match subscription(&forever, &stdio) {
            Some(Wanted::After(delay, event)) => {
                assert_eq!(delay, Duration::from_nanos(u64::MAX >> 1));
                assert_eq!((event.userdata, event.kind), (7, EVENT_CLOCK));
            }
            other => panic!("{other:?}"),
        }
        // An absolute deadline in the past is due now.
        let past = clock(1, CLOCK_REALTIME, 1, ABSTIME);
        assert!(matches!(subscription(&past, &stdio), Some(Wanted::Now(e)) if e.error == 0));
        // The CPU-time clocks are not offered.
        let cpu = clock(2, 2, 1000, 0);
        assert!(
            matches!(subscription(&cpu, &stdio), Some(Wanted::Now(e)) if e.error == errno::INVAL as u16)
        );
        let stdin = fd(3, EVENT_FD_READ, 0);
        assert!(matches!(subscription(&stdin, &stdio), Some(Wanted::Now(e)) if e.hangup));
        let stdout = fd(4, EVENT_FD_WRITE, 1);
        assert!(
            matches!(subscription(&stdout, &stdio), Some(Wanted::Now(e)) if e.error == 0 && e.nbytes > 0)
        );
        let other = fd(5, EVENT_FD_READ, 9);
        assert!(
            matches!(subscription(&other, &stdio), Some(Wanted::Now(e)) if e.error == errno::BADF as u16)
        );
        let mut bad = fd(6, EVENT_FD_READ, 0);
        bad[8] = 9;
        assert_eq!(subscription(&bad, &stdio), None);
    }

    #[test]
    fn events_are_written_as_preview1_lays_them_out() {
        let mut memory = vec![0xffu8; EVENT_SIZE];
        let event = Event {
            userdata: 0x0102_0304_0506_0708,
            error: 8,
            kind: EVENT_FD_READ,
            nbytes: 5,
            hangup: true,
        };
        write_event(&mut memory, 0, &event);
        assert_eq!(&memory[0..8], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&memory[8..11], &[8, 0, EVENT_FD_READ]);
        assert_eq!(&memory[16..24], &5u64.to_le_bytes());
        assert_eq!(&memory[24..26], &[1, 0]);
        assert!(memory[26..].iter().all(|b| *b == 0));
    }
}
