//! Small helpers over `std::sync` used across the host, and the record of locks a panic
//! left behind.
//!
//! A panic while a lock is held poisons it. The host keeps going with the inner value
//! (`lock`, `read`, `write` ignore poisoning), but whoever catches the panic must know
//! whether shared state may be half-changed: every guard these helpers hand out notes, when
//! it is dropped by a panic unwinding, that this thread left a lock poisoned
//! ([`take_poisoned`]). A lock whose data a panic cannot leave half-changed for anyone else
//! — the instance slot of the service being run (discarded with the service), a condvar's
//! `()` — is taken with [`lock_plain`] instead, which notes nothing.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

thread_local! {
    static POISONED: Cell<bool> = const { Cell::new(false) };
}

/// A lock guard that notes a panic unwinding through it (see the module documentation): one
/// that began while the guard was held, so cleanup code that locks during an unwinding
/// (and leaves the data whole) does not count.
pub(crate) struct Watched<G> {
    guard: G,
    /// Whether the thread was already unwinding when the lock was taken.
    taken_while_panicking: bool,
}

impl<G> Watched<G> {
    #[inline]
    fn new(guard: G) -> Watched<G> {
        Watched {
            guard,
            taken_while_panicking: std::thread::panicking(),
        }
    }
}

impl<G: Deref> Deref for Watched<G> {
    type Target = G::Target;

    #[inline]
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Watched<G> {
    #[inline]
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

impl<G> Drop for Watched<G> {
    #[inline(always)]
    fn drop(&mut self) {
        if !self.taken_while_panicking && std::thread::panicking() {
            POISONED.set(true);
        }
    }
}

/// Locks a mutex, ignoring poisoning.
#[inline]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> Watched<MutexGuard<'_, T>> {
    Watched::new(mutex.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Locks a mutex whose data a panic cannot leave half-changed for others (see the module
/// documentation), ignoring poisoning and noting nothing.
pub(crate) fn lock_plain<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a read lock, ignoring poisoning (a reader cannot leave the data half-changed, so
/// it notes nothing).
#[inline]
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a write lock, ignoring poisoning.
#[inline]
pub(crate) fn write<T>(lock: &RwLock<T>) -> Watched<RwLockWriteGuard<'_, T>> {
    Watched::new(lock.write().unwrap_or_else(PoisonError::into_inner))
}

/// Waits until `done()` holds, looking every millisecond, or until `deadline` (none: no
/// limit); whether it held (the node's stop uses it to wait for its threads).
pub(crate) fn wait_until(deadline: Option<std::time::Instant>, done: impl Fn() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether a panic on this thread unwound through a lock since the last call (and clears
/// the note).
pub(crate) fn take_poisoned() -> bool {
    POISONED.replace(false)
}

/// The text of a caught panic's payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// A future whose panics are caught: it completes with the panic's text instead of
/// unwinding into the async runtime, which would end its task without a word (and leave
/// whatever the task was to clean up in place).
pub(crate) struct Contained<F>(std::pin::Pin<Box<F>>);

/// `future`, with its panics caught ([`Contained`]).
pub(crate) fn contained<F: std::future::Future>(future: F) -> Contained<F> {
    Contained(Box::pin(future))
}

impl<F: std::future::Future> std::future::Future for Contained<F> {
    type Output = Result<F::Output, String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        // Once it panicked it is Ready, and the runtime never polls it again.
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_text(&*payload))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[test]
    fn a_contained_future_completes_with_its_panic_text() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let fine = runtime.block_on(contained(async { 7 }));
        assert_eq!(fine, Ok(7));
        let panicked = runtime.block_on(contained(async {
            tokio::task::yield_now().await;
            panic!("bad frame");
        }));
        assert_eq!(panicked, Err::<(), _>("bad frame".to_string()));
    }

    #[test]
    fn a_panic_through_a_watched_lock_is_noted_once() {
        let shared = Mutex::new(1);
        let own = Mutex::new(2);
        assert!(!take_poisoned());
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let _guard = lock_plain(&own);
            panic!("in the service's own state");
        }));
        assert!(
            !take_poisoned(),
            "the service's own lock is not shared state"
        );
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let _guard = lock(&shared);
            panic!("in shared state");
        }));
        assert!(take_poisoned());
        assert!(!take_poisoned(), "the note is cleared when read");
        // Cleanup that locks while the unwinding runs, and leaves the data whole, does not
        // count; nor does a reader.
        struct Cleanup<'a>(&'a Mutex<i32>);
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                *lock(self.0) += 1;
            }
        }
        let rw = RwLock::new(0);
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let _cleanup = Cleanup(&shared);
            let _reader = read(&rw);
            panic!("elsewhere");
        }));
        assert!(!take_poisoned());
        // The host goes on with the value (the cleanup's change kept).
        assert_eq!(*lock(&shared), 2);
    }

    #[test]
    fn panic_payloads_become_text() {
        let caught = catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_text(&*caught), "plain");
        let caught = catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        assert_eq!(panic_text(&*caught), "formatted 7");
    }
}
