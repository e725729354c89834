//! The monitor (skynet's `skynet_monitor.c`) and the wasm epoch.
//!
//! Each worker publishes which message it is running; every 5 seconds the monitor thread
//! checks that every busy worker has moved on since the last check, and otherwise logs
//! `A message from [ :src ] to [ :dst ] maybe in an endless loop (version = n)` and flags
//! the service (`STAT endless`). The same thread advances wasmtime's epoch every 10 ms;
//! running wasm code checks at each epoch whether it was interrupted (`KILL`, `SIGNAL 0`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use skywasm_abi::Handle;

/// Epoch period: how soon `KILL` and `SIGNAL 0` stop running wasm code.
pub const EPOCH_PERIOD: Duration = Duration::from_millis(10);
/// Epochs between two endless-loop checks (skynet checks every 5 s).
const CHECK_EVERY: u32 = 500;

/// What one worker is running (padded: each worker writes its own cache line).
#[repr(align(128))]
#[derive(Debug, Default)]
struct WorkerWatch {
    version: AtomicU32,
    source: AtomicU32,
    destination: AtomicU32,
}

impl WorkerWatch {
    /// Advances the version. Only the watch's own worker writes it: a load and a plain
    /// store, no atomic read-modify-write on the message path.
    fn bump(&self) {
        let version = self.version.load(Ordering::Relaxed);
        self.version
            .store(version.wrapping_add(1), Ordering::Release);
    }
}

/// Per-worker watches.
pub struct Monitor {
    watches: Vec<WorkerWatch>,
    /// Epoch periods since the node started (advanced with wasmtime's epoch).
    epochs: std::sync::atomic::AtomicU64,
    stopped: std::sync::atomic::AtomicBool,
}

impl Monitor {
    /// The monitor thread's loop until [`Monitor::stop`]: every [`EPOCH_PERIOD`] it calls
    /// `tick` (the node advances the wasm epoch) and tells `busy` which service each worker
    /// is running a message of (worker index, service, nanoseconds since the look before:
    /// the busy-time samples), and every
    /// 5 s it reports each worker still in the message it was in 5 s before to `endless`
    /// (source, destination and the watch's version), as skynet's monitor does.
    pub(crate) fn run(
        &self,
        tick: impl Fn(),
        busy: impl Fn(usize, Handle, u64),
        endless: impl Fn(Handle, Handle, u32),
    ) {
        let mut checked: Vec<u32> = vec![0; self.watches.len()];
        let mut ticks = 0u32;
        let mut last_look = std::time::Instant::now();
        while !self.stopped.load(Ordering::Acquire) {
            std::thread::sleep(EPOCH_PERIOD);
            tick();
            self.epochs.fetch_add(1, Ordering::Relaxed);
            // A busy worker counts the time since the last look, not the nominal period:
            // this thread oversleeps on a loaded machine.
            let now = std::time::Instant::now();
            let since = now.duration_since(last_look).as_nanos() as u64;
            last_look = now;
            for worker in 0..self.watches.len() {
                if let Some(service) = self.running(worker) {
                    busy(worker, service, since);
                }
            }
            ticks += 1;
            if ticks % CHECK_EVERY != 0 {
                continue;
            }
            for (watch, last) in self.watches.iter().zip(checked.iter_mut()) {
                let version = watch.version.load(Ordering::Acquire);
                let destination = Handle(watch.destination.load(Ordering::Relaxed));
                if version == *last && !destination.is_none() {
                    let source = Handle(watch.source.load(Ordering::Relaxed));
                    endless(source, destination, version);
                }
                *last = version;
            }
        }
    }

    /// Watches for `workers` workers.
    pub fn new(workers: usize) -> Monitor {
        Monitor {
            watches: (0..workers).map(|_| WorkerWatch::default()).collect(),
            epochs: std::sync::atomic::AtomicU64::new(0),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Epoch periods ([`EPOCH_PERIOD`]) since the node started.
    pub fn epochs(&self) -> u64 {
        self.epochs.load(Ordering::Relaxed)
    }

    /// Stops the monitor thread (after the workers have stopped).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// A worker starts a message.
    pub(crate) fn enter(&self, worker: usize, source: Handle, destination: Handle) {
        if let Some(watch) = self.watches.get(worker) {
            watch.source.store(source.0, Ordering::Relaxed);
            watch.destination.store(destination.0, Ordering::Relaxed);
            watch.bump();
        }
    }

    /// The service worker `worker` is running a message of, if any.
    pub(crate) fn running(&self, worker: usize) -> Option<Handle> {
        let watch = self.watches.get(worker)?;
        let destination = Handle(watch.destination.load(Ordering::Relaxed));
        (!destination.is_none()).then_some(destination)
    }

    /// A worker finished its message.
    pub(crate) fn leave(&self, worker: usize) {
        if let Some(watch) = self.watches.get(worker) {
            watch.destination.store(0, Ordering::Relaxed);
            watch.bump();
        }
    }
}
