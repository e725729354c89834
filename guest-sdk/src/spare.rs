//! The spare memory: what the linker leaves unused between the top of the stack and the
//! first static, when a service is linked with its statics placed above its stack
//! (`--global-base` past `-z stack-size`; see `docs/abi.md`, "Memory layout").
//!
//! Why: an idle service's private memory is the pages it has written. With the standard
//! layout those are two: the top of the stack, and the page holding `.data`, `.bss` and the
//! heap's first chunk, read-only data lying between them. When the stack's top page also
//! holds the SDK's state and the heap's first piece, an idle service writes that page only,
//! and every page of its memory image stays shared with the other instances of its module.
//!
//! The spare memory starts with the roots of the SDK's state ([`Root`]); the heap keeps its
//! allocator there too and hands out the rest first. Without spare memory (the standard
//! layout) the same state lives in statics. (Builds for the host, the SDK's unit tests, keep
//! per-thread state and have no spare memory.)

use core::cell::Cell;

/// State of the SDK found through a root word at the start of the spare memory.
#[derive(Clone, Copy)]
pub(crate) enum Root {
    /// The runtime: tasks, handlers and pending calls.
    Runtime = 0,
}

/// Root words reserved (one in use; the rest keep what follows 16-byte aligned).
const ROOTS: usize = 4;

/// The bytes the roots take at the start of the spare memory.
const ROOTS_SIZE: usize = ROOTS * core::mem::size_of::<usize>();

/// `[start, end)` of the spare memory when there is room for more than the roots.
fn range() -> Option<(usize, usize)> {
    extern "C" {
        static __stack_high: u8;
        static __global_base: u8;
    }
    // Only the addresses of the linker-defined symbols are taken. With the standard layout
    // the statics start at the top of the stack (stack first) or below it (data first):
    // no spare memory.
    let start = core::ptr::addr_of!(__stack_high) as usize;
    let end = core::ptr::addr_of!(__global_base) as usize;
    let start = start.next_multiple_of(16);
    (end > start + ROOTS_SIZE).then_some((start, end))
}

/// The spare memory after the roots, which the heap uses: `[start, end)`, 16-byte aligned.
pub(crate) fn heap_area() -> Option<(usize, usize)> {
    range().map(|(start, end)| (start + ROOTS_SIZE, end))
}

/// A root word in static storage, for a service without spare memory.
pub(crate) struct StaticRoot(Cell<usize>);

// SAFETY: the guest has one thread (the heap refuses to build with atomics).
unsafe impl Sync for StaticRoot {}

impl StaticRoot {
    /// An empty root.
    pub(crate) const fn new() -> Self {
        StaticRoot(Cell::new(0))
    }
}

/// The value a root holds, made (and leaked onto the heap) at first use: the root lives in
/// the spare memory when there is some, else in `fallback`. Each root must always be used
/// with one type `T`.
pub(crate) fn rooted<T>(root: Root, fallback: &'static StaticRoot, make: fn() -> T) -> &'static T {
    let word: &'static Cell<usize> = match range() {
        // SAFETY: the spare memory belongs to no one else (the linker placed nothing there,
        // the stack stays below it, and the heap starts after the roots); it starts zeroed
        // (an empty root) and is 16-byte aligned; the guest has one thread.
        Some((start, _)) => unsafe { &*(start as *const Cell<usize>).add(root as usize) },
        None => &fallback.0,
    };
    let mut value = word.get();
    if value == 0 {
        value = make_root(word, make);
    }
    // SAFETY: the word holds a leaked `Box<T>` (the same `T` at every use of this root).
    unsafe { &*(value as *const T) }
}

/// Fills an empty root: kept out of line, so that the accesses on the message path stay
/// small.
#[cold]
#[inline(never)]
fn make_root<T>(word: &Cell<usize>, make: fn() -> T) -> usize {
    let value = Box::into_raw(Box::new(make())) as usize;
    word.set(value);
    value
}
