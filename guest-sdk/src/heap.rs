//! The service's heap: one allocator for Rust and for C code linked into the service, which
//! takes linear memory only as far as it is used.
//!
//! wasi-libc's `malloc` claims everything from `__heap_base` to the end of the initial memory
//! at its first call and writes the top chunk's footer at that end. That footer alone makes
//! one more page of every instance private (4 KiB per idle service, and a page fault at each
//! start). This module defines the C allocation functions instead — so the linker never pulls
//! in wasi-libc's allocator, and Rust's `System` allocator, which calls `malloc`, lands here —
//! over the `dlmalloc` crate with a system layer ([`Region`]) that hands it memory in 4 KiB
//! steps from `__heap_base` upwards, growing the linear memory only when a step needs it.
//!
//! The heap owns the initial memory above `__heap_base` and the pages it grows itself; pages
//! that something else grows (another allocator, `sbrk`) are left to it.

use core::cell::Cell;
use core::ptr;

use dlmalloc::{Allocator, Dlmalloc};

/// The step in which memory is handed to the allocator: an OS page, so the last page the
/// allocator writes is the last page it uses.
pub(crate) const STEP: usize = 4096;

/// How dlmalloc rounds what it asks its system layer for. Small, so that a request is not
/// rounded past the page it fits in; [`Region`] rounds each piece's end to a [`STEP`].
const GRANULARITY: usize = 64;

/// The alignment `malloc` guarantees (dlmalloc's natural alignment on wasm32).
const MALLOC_ALIGN: usize = 2 * core::mem::size_of::<usize>();

/// The size of a wasm page, the unit `memory.grow` works in.
const WASM_PAGE: usize = 65536;

/// What a [`Region`] grows into: the linear memory, or a buffer in tests.
pub(crate) trait LinearMemory {
    /// The first byte the heap may use (`__heap_base`).
    fn heap_base(&self) -> usize;
    /// The end of the initial memory (`__heap_end`): from the heap base to here is the heap's.
    fn initial_end(&self) -> usize;
    /// Grows the memory by `pages` wasm pages; the old end in bytes (where the new pages
    /// start), or `None` if the memory cannot grow.
    fn grow(&self, pages: usize) -> Option<usize>;
    /// Memory below the heap base the heap may use first, `[start, end)` (the spare memory
    /// above the stack, see `crate::spare`), or `None`.
    fn spare(&self) -> Option<(usize, usize)>;
}

/// dlmalloc's system allocator: pieces of the memory the heap owns, each ending on a
/// [`STEP`] boundary (or its run's end), handed out in order. The heap owns the spare memory
/// if there is some, the initial memory above the heap base, and the pages it grew itself;
/// pages something else grew (another allocator, `sbrk`) are never handed out. Consecutive
/// pieces let dlmalloc merge them into one segment.
pub(crate) struct Region<M> {
    memory: M,
    /// One past the last byte handed out; 0 until the first piece.
    next: Cell<usize>,
    /// One past the last byte of the run of memory the heap owns that `next` is in.
    limit: Cell<usize>,
    /// Whether that run is the spare memory (which the initial memory follows, not pages
    /// grown).
    in_spare: Cell<bool>,
}

impl<M> Region<M> {
    pub(crate) const fn new(memory: M) -> Self {
        Region {
            memory,
            next: Cell::new(0),
            limit: Cell::new(0),
            in_spare: Cell::new(false),
        }
    }

    /// One past the last byte handed to the allocator so far (0 before the first piece).
    #[cfg(test)]
    pub(crate) fn handed_out_end(&self) -> usize {
        self.next.get()
    }
}

impl<M: LinearMemory> Region<M> {
    /// Makes `[next, next + size)` owned memory, growing it if needed: `(next, limit,
    /// in_spare)` of the run to hand out from, or `None`.
    fn make_room(&self, size: usize) -> Option<(usize, usize, bool)> {
        let initial = || {
            (
                self.memory.heap_base().next_multiple_of(MALLOC_ALIGN),
                self.memory.initial_end(),
            )
        };
        let (mut next, mut limit, mut in_spare) = match self.next.get() {
            0 => match self.memory.spare() {
                Some((start, end)) => (start.next_multiple_of(MALLOC_ALIGN), end, true),
                None => {
                    let (next, limit) = initial();
                    (next, limit, false)
                }
            },
            next => (next, self.limit.get(), self.in_spare.get()),
        };
        if in_spare && next.checked_add(size)? > limit {
            // The spare memory cannot hold the piece: the heap goes on in the initial memory
            // (what is left of the spare memory stays dlmalloc's, in its first segment).
            (next, limit) = initial();
            in_spare = false;
        }
        if next.checked_add(size)? > limit {
            let short = (next + size - limit).div_ceil(WASM_PAGE);
            let old_end = self.memory.grow(short)?;
            // Checked: a 4 GiB memory's end does not fit in a wasm32 address, so its last
            // page stays unused.
            if old_end == limit {
                limit = limit.checked_add(short * WASM_PAGE)?;
            } else {
                // Something else grew the memory since: the new pages start a run of their
                // own, grown to hold the whole piece.
                let pages = size.div_ceil(WASM_PAGE);
                if pages > short {
                    self.memory.grow(pages - short)?;
                }
                next = old_end;
                limit = old_end.checked_add(pages.max(short) * WASM_PAGE)?;
            }
        }
        Some((next, limit, in_spare))
    }
}

// SAFETY: pieces never overlap (each starts where the last ended, at the heap base once the
// spare memory is left, or in pages just grown) and come only from memory the heap owns;
// memory never handed out before is zero (fresh linear memory, or a test buffer kept zero);
// nothing is ever released, so `free` and `free_part` refuse.
unsafe impl<M: LinearMemory + Send> Allocator for Region<M> {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let Some((start, limit, in_spare)) = self.make_room(size) else {
            return (ptr::null_mut(), 0, 0);
        };
        // Rounding up stops at the run's limit.
        let end = (start + size).next_multiple_of(STEP).min(limit);
        self.next.set(end);
        self.limit.set(limit);
        self.in_spare.set(in_spare);
        (start as *mut u8, end - start, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        STEP
    }
}

/// The C allocation functions over dlmalloc: a failure is a null pointer (and, at the C
/// boundary, an errno), as C expects.
pub(crate) struct Heap<M>(Dlmalloc<Region<M>>);

impl<M: LinearMemory + Send> Heap<M> {
    pub(crate) const fn new(memory: M) -> Self {
        let mut inner = Dlmalloc::new_with_allocator(Region::new(memory));
        assert!(inner.set_granularity(GRANULARITY));
        Heap(inner)
    }

    /// The system layer, to inspect in tests.
    #[cfg(test)]
    pub(crate) fn region(&self) -> &Region<M> {
        self.0.allocator()
    }

    pub(crate) unsafe fn malloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: any size is accepted.
        unsafe { self.0.c_malloc(size) }
    }

    pub(crate) unsafe fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return ptr::null_mut();
        };
        // SAFETY: the natural alignment is a valid one; dlmalloc clears what is not fresh.
        unsafe { self.0.calloc(total, MALLOC_ALIGN) }
    }

    /// `align` must be a power of two.
    pub(crate) unsafe fn memalign(&mut self, align: usize, size: usize) -> *mut u8 {
        // SAFETY: the caller checked `align`.
        unsafe { self.0.c_memalign(align, size) }
    }

    /// `ptr` is null or live from this heap.
    pub(crate) unsafe fn realloc(&mut self, ptr: *mut u8, size: usize) -> *mut u8 {
        // SAFETY: as the caller promised.
        unsafe { self.0.c_realloc(ptr, size) }
    }

    /// `ptr` is null or live from this heap.
    pub(crate) unsafe fn free(&mut self, ptr: *mut u8) {
        // SAFETY: as the caller promised.
        unsafe { self.0.c_free(ptr) }
    }

    /// How many bytes from `ptr` the caller may use (at least what it asked for). `ptr` is
    /// null or live from this heap.
    pub(crate) unsafe fn usable_size(&self, ptr: *mut u8) -> usize {
        if ptr.is_null() {
            return 0;
        }
        // dlmalloc's chunk header, the word before the memory: the chunk's size with three
        // flag bits; a chunk with neither in-use bit set is a directly allocated one, with a
        // two-word overhead instead of one. (The layout is dlmalloc's, unchanged since 2.8;
        // the tests write every usable byte of random allocations to catch a change.)
        const WORD: usize = core::mem::size_of::<usize>();
        // SAFETY: a live chunk's header precedes its memory.
        let head = unsafe { ptr.sub(WORD).cast::<usize>().read() };
        let size = head & !7;
        let directly_allocated = head & 3 == 0;
        size - if directly_allocated { 2 * WORD } else { WORD }
    }
}

/// The C ABI on the guest: the functions wasi-libc's allocator would define, all of them (a
/// reference to one it defines alone would pull it in, and clash).
#[cfg(target_family = "wasm")]
mod c_abi {
    use core::cell::UnsafeCell;
    use core::ffi::c_void;
    use core::mem::{align_of, size_of, MaybeUninit};

    use super::{Heap, LinearMemory, MALLOC_ALIGN, WASM_PAGE};

    #[cfg(target_feature = "atomics")]
    compile_error!("the guest heap assumes one thread (wasm32-wasip1)");

    /// The instance's linear memory (memory 0).
    struct Linear;

    impl LinearMemory for Linear {
        fn heap_base(&self) -> usize {
            extern "C" {
                static __heap_base: u8;
            }
            // Only the address of the linker-defined symbol is taken.
            core::ptr::addr_of!(__heap_base) as usize
        }

        fn initial_end(&self) -> usize {
            extern "C" {
                static __heap_end: u8;
            }
            // Only the address of the linker-defined symbol is taken.
            core::ptr::addr_of!(__heap_end) as usize
        }

        fn grow(&self, pages: usize) -> Option<usize> {
            match core::arch::wasm32::memory_grow(0, pages) {
                usize::MAX => None,
                old => Some(old * WASM_PAGE),
            }
        }

        fn spare(&self) -> Option<(usize, usize)> {
            placement().map(|(_, rest)| rest)
        }
    }

    struct Global(UnsafeCell<Heap<Linear>>);

    // SAFETY: the guest has one thread (checked above) and no allocation function re-enters.
    unsafe impl Sync for Global {}

    /// The heap of a service without spare memory.
    static HEAP: Global = Global(UnsafeCell::new(Heap::new(Linear)));

    /// The heap kept at the start of the spare memory (whose first page an idle service
    /// writes anyway), made at first use: then the static above is never written.
    #[repr(C)]
    struct Placed {
        made: bool,
        heap: MaybeUninit<Heap<Linear>>,
    }

    /// Where a placed heap starts, and where the spare memory after it starts and ends:
    /// `None` without spare memory, or when it would leave the heap less than [`MIN_SPARE`].
    fn placement() -> Option<(*mut Placed, (usize, usize))> {
        let (start, end) = crate::spare::heap_area()?;
        let start = start.next_multiple_of(align_of::<Placed>());
        let rest = (start + size_of::<Placed>()).next_multiple_of(MALLOC_ALIGN);
        (end >= rest + MIN_SPARE).then_some((start as *mut Placed, (rest, end)))
    }

    /// Makes the placed heap at the first allocation: out of line, so that every allocation
    /// does not carry it.
    #[cold]
    #[inline(never)]
    fn make(placed: &mut Placed) {
        placed.heap.write(Heap::new(Linear));
        placed.made = true;
    }

    /// The least spare memory worth handing the heap: a first chunk and dlmalloc's footer.
    const MIN_SPARE: usize = 256;

    fn heap() -> &'static mut Heap<Linear> {
        match placement() {
            // SAFETY: the placement lies in the spare memory, which nothing else uses and
            // which starts zeroed (`made` false); one thread, and every use below is one call
            // that does not re-enter.
            Some((placed, _)) => unsafe {
                let placed = &mut *placed;
                if !placed.made {
                    make(placed);
                }
                placed.heap.assume_init_mut()
            },
            // SAFETY: one thread, and every use below is one call that does not re-enter.
            None => unsafe { &mut *HEAP.0.get() },
        }
    }

    extern "C" {
        static mut errno: i32;
    }
    // wasi-libc's errno values.
    const EINVAL: i32 = 28;
    const ENOMEM: i32 = 48;

    fn set_errno(value: i32) {
        // SAFETY: wasi-libc's errno is a plain global on a one-threaded target.
        unsafe { *core::ptr::addr_of_mut!(errno) = value }
    }

    fn checked(p: *mut u8) -> *mut c_void {
        if p.is_null() {
            set_errno(ENOMEM);
        }
        p.cast()
    }

    /// C `malloc`.
    #[no_mangle]
    pub extern "C" fn malloc(size: usize) -> *mut c_void {
        // SAFETY: any size is accepted.
        checked(unsafe { heap().malloc(size) })
    }

    /// musl's internal name for `malloc`, used inside wasi-libc.
    #[no_mangle]
    pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
        malloc(size)
    }

    /// C `calloc`.
    #[no_mangle]
    pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
        // SAFETY: any sizes are accepted (an overflowing product fails).
        checked(unsafe { heap().calloc(count, size) })
    }

    /// musl's internal name for `calloc`.
    #[no_mangle]
    pub extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
        calloc(count, size)
    }

    /// C `realloc`.
    ///
    /// # Safety
    /// `ptr` is null or a live allocation of this heap.
    #[no_mangle]
    pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: as the caller promised.
        checked(unsafe { heap().realloc(ptr.cast(), size) })
    }

    /// C `free`.
    ///
    /// # Safety
    /// `ptr` is null or a live allocation of this heap.
    #[no_mangle]
    pub unsafe extern "C" fn free(ptr: *mut c_void) {
        // SAFETY: as the caller promised.
        unsafe { heap().free(ptr.cast()) }
    }

    /// musl's internal name for `free`.
    ///
    /// # Safety
    /// As [`free`].
    #[no_mangle]
    pub unsafe extern "C" fn __libc_free(ptr: *mut c_void) {
        // SAFETY: as the caller promised.
        unsafe { free(ptr) }
    }

    /// C11 `aligned_alloc`: null (EINVAL) unless `align` is a power of two.
    #[no_mangle]
    pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
        if !align.is_power_of_two() {
            set_errno(EINVAL);
            return core::ptr::null_mut();
        }
        // SAFETY: `align` is a power of two.
        checked(unsafe { heap().memalign(align, size) })
    }

    /// POSIX `posix_memalign`: 0, or EINVAL / ENOMEM (and `*out` untouched).
    ///
    /// # Safety
    /// `out` is valid for a pointer-sized write.
    #[no_mangle]
    pub unsafe extern "C" fn posix_memalign(
        out: *mut *mut c_void,
        align: usize,
        size: usize,
    ) -> i32 {
        if !align.is_power_of_two() || align % core::mem::size_of::<usize>() != 0 {
            return EINVAL;
        }
        // SAFETY: `align` is a power of two.
        let p = unsafe { heap().memalign(align.max(MALLOC_ALIGN), size) };
        if p.is_null() {
            return ENOMEM;
        }
        // SAFETY: as the caller promised.
        unsafe { out.write(p.cast()) };
        0
    }

    /// `malloc_usable_size`.
    ///
    /// # Safety
    /// `ptr` is null or a live allocation of this heap.
    #[no_mangle]
    pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
        // SAFETY: as the caller promised.
        unsafe { heap().usable_size(ptr.cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;

    /// A linear memory made of a zeroed buffer: `limit` bytes accessible (the first
    /// `initial` of them the initial memory), growing in 64 KiB pages like wasm, up to the
    /// buffer's size. Held as a raw pointer: the heap writes into it while the test reads it.
    struct Buffer {
        bytes: *mut [u8],
        base_offset: usize,
        initial: usize,
        limit: Cell<usize>,
        grows: Cell<usize>,
        /// Spare memory below the heap base, as offsets `[start, end)`.
        spare: Option<(usize, usize)>,
    }

    // SAFETY: each Buffer is made and used by one test, on one thread.
    unsafe impl Send for Buffer {}

    impl Buffer {
        fn new(capacity: usize, initial: usize, base_offset: usize) -> Self {
            Buffer {
                bytes: Box::into_raw(vec![0u8; capacity].into_boxed_slice()),
                base_offset,
                initial,
                limit: Cell::new(initial),
                grows: Cell::new(0),
                spare: None,
            }
        }
        /// The same memory with spare memory at offsets `[start, end)`, below the heap base.
        fn with_spare(mut self, start: usize, end: usize) -> Self {
            assert!(start < end && end <= self.base_offset);
            self.spare = Some((start, end));
            self
        }
        /// Fills `[from, to)` (offsets) with `byte`, as statics the heap must not touch.
        fn fill(&self, from: usize, to: usize, byte: u8) {
            assert!(from <= to && to <= self.bytes.len());
            // SAFETY: within the buffer.
            unsafe {
                self.bytes
                    .cast::<u8>()
                    .add(from)
                    .write_bytes(byte, to - from)
            };
        }
        fn start(&self) -> usize {
            self.bytes.cast::<u8>() as usize
        }
        /// The bytes from `offset` to the end of the buffer.
        fn tail(&self, offset: usize) -> &[u8] {
            // SAFETY: within the buffer, which lives as long as self.
            unsafe {
                std::slice::from_raw_parts(
                    self.bytes.cast::<u8>().add(offset),
                    self.bytes.len() - offset,
                )
            }
        }
        /// What another grower of the memory does: takes `pages` and fills them with 0xAA;
        /// their offset.
        fn grow_elsewhere(&self, pages: usize) -> usize {
            let at = self.grow(pages).expect("room in the buffer") - self.start();
            self.fill(at, at + pages * WASM_PAGE, 0xAA);
            at
        }
    }

    impl Drop for Buffer {
        fn drop(&mut self) {
            // SAFETY: made by Box::into_raw in new, dropped once.
            drop(unsafe { Box::from_raw(self.bytes) });
        }
    }

    impl LinearMemory for Buffer {
        fn heap_base(&self) -> usize {
            self.start() + self.base_offset
        }
        fn initial_end(&self) -> usize {
            self.start() + self.initial
        }
        fn grow(&self, pages: usize) -> Option<usize> {
            let old = self.limit.get();
            let new = old + pages * WASM_PAGE;
            if new > self.bytes.len() {
                return None;
            }
            self.limit.set(new);
            self.grows.set(self.grows.get() + 1);
            Some(self.start() + old)
        }
        fn spare(&self) -> Option<(usize, usize)> {
            self.spare
                .map(|(start, end)| (self.start() + start, self.start() + end))
        }
    }

    fn memory(heap: &Heap<Buffer>) -> &Buffer {
        &heap.region().memory
    }

    /// Bytes of the accessible memory past what the heap was handed that are not zero: the
    /// allocator wrote where it had not been given memory.
    fn written_past_handed_out(heap: &Heap<Buffer>) -> usize {
        let buffer = memory(heap);
        let from = heap.region().handed_out_end().max(buffer.start()) - buffer.start();
        let accessible = &buffer.tail(from)[..buffer.limit.get() - from];
        accessible.iter().filter(|b| **b != 0).count()
    }

    #[test]
    fn a_small_heap_touches_only_the_steps_it_uses() {
        // An odd heap base, 16 KiB into a 64 KiB memory, as a linker leaves it.
        let mut heap = Heap::new(Buffer::new(1 << 20, 65536, 16 * 1024 + 36));
        let base = memory(&heap).heap_base();
        // SAFETY: fresh heap.
        let p = unsafe { heap.malloc(100) };
        assert!(!p.is_null());
        assert!(p as usize >= base && (p as usize) % MALLOC_ALIGN == 0);
        let end = heap.region().handed_out_end();
        assert_eq!(
            end,
            base.next_multiple_of(STEP),
            "only the heap base's page"
        );
        assert_eq!(memory(&heap).grows.get(), 0, "the initial memory sufficed");
        assert_eq!(written_past_handed_out(&heap), 0);
    }

    #[test]
    fn the_heap_starts_in_the_spare_memory_and_goes_on_at_the_heap_base() {
        // As the linker leaves it: the spare memory is the rest of the stack's top page, then
        // statics up to the heap base.
        let (spare, statics, base) = ((5 << 10, 8 << 10), 8 << 10, 12_004);
        let buffer = Buffer::new(1 << 20, 65536, base).with_spare(spare.0, spare.1);
        buffer.fill(statics, base, 0xCC);
        let mut heap = Heap::new(buffer);
        let start = memory(&heap).start();
        let in_spare =
            |p: *mut u8, n: usize| (start + spare.0..=start + spare.1 - n).contains(&(p as usize));
        let mut blocks = Vec::new();
        // SAFETY: live heap; blocks are used within their sizes.
        unsafe {
            let first = heap.malloc(100);
            assert!(
                in_spare(first, 100),
                "a small heap lives in the spare memory"
            );
            blocks.push((first, 100));
            while blocks.len() < 40 {
                let p = heap.malloc(300);
                assert!(!p.is_null());
                blocks.push((p, 300));
            }
            let past = blocks.iter().filter(|(p, _)| *p as usize >= start + base);
            assert!(past.count() > 0, "the heap went on at the heap base");
            for (k, (p, n)) in blocks.iter().enumerate() {
                let at = *p as usize;
                assert!(
                    in_spare(*p, *n) || at >= start + base,
                    "{k}: {at:x} outside"
                );
                let others = &blocks[k + 1..];
                assert!(others
                    .iter()
                    .all(|(q, m)| at + n <= *q as usize || *q as usize + m <= at));
                p.write_bytes(0x55, *n);
            }
        }
        let statics_bytes = &memory(&heap).tail(statics)[..base - statics];
        assert!(statics_bytes.iter().all(|b| *b == 0xCC), "statics intact");
        assert_eq!(memory(&heap).grows.get(), 0);
        assert_eq!(written_past_handed_out(&heap), 0);
    }

    #[test]
    fn the_heap_grows_the_memory_only_when_a_step_needs_it_and_fails_cleanly_at_its_end() {
        let mut heap = Heap::new(Buffer::new(4 << 20, 65536, 1000));
        let mut kept = Vec::new();
        loop {
            // SAFETY: live heap.
            let p = unsafe { heap.malloc(10_000) };
            if p.is_null() {
                break;
            }
            kept.push(p);
        }
        let buffer = memory(&heap);
        assert_eq!(buffer.limit.get(), 4 << 20, "grew to the whole buffer");
        assert!(
            kept.len() >= (4 << 20) / 10_100 - 2,
            "{} blocks",
            kept.len()
        );
        assert_eq!(written_past_handed_out(&heap), 0);
        // Freed memory is reused without growing.
        for p in kept.drain(..) {
            // SAFETY: each is live.
            unsafe { heap.free(p) };
        }
        // SAFETY: live heap.
        assert!(!unsafe { heap.malloc(1 << 20) }.is_null());
    }

    #[test]
    fn memory_something_else_grew_is_never_handed_out() {
        let mut heap = Heap::new(Buffer::new(8 << 20, 65536, 3000));
        let mut blocks = Vec::new();
        // SAFETY: live heap; blocks are used within their sizes.
        unsafe {
            blocks.push((heap.malloc(40_000), 40_000));
            let foreign = memory(&heap).grow_elsewhere(2);
            // More than the initial memory has left: the heap must grow past the foreign
            // pages, small and large pieces alike.
            for size in [30_000, 200_000, 100, 70_000] {
                blocks.push((heap.malloc(size), size));
            }
            let start = memory(&heap).start();
            let foreign = start + foreign..start + foreign + 2 * WASM_PAGE;
            for (p, size) in &blocks {
                assert!(!p.is_null());
                let block = *p as usize..*p as usize + size;
                assert!(
                    block.end <= foreign.start || block.start >= foreign.end,
                    "{block:x?} overlaps {foreign:x?}"
                );
                p.write_bytes(0x55, *size);
            }
            let buffer = memory(&heap);
            let foreign_bytes = &buffer.tail(foreign.start - start)[..2 * WASM_PAGE];
            assert!(
                foreign_bytes.iter().all(|b| *b == 0xAA),
                "foreign pages intact"
            );
        }
    }

    #[test]
    fn calloc_refuses_an_overflowing_size_and_clears_reused_memory() {
        let mut heap = Heap::new(Buffer::new(1 << 20, 65536, 64));
        // SAFETY: live heap.
        unsafe {
            assert!(heap.calloc(usize::MAX / 2, 3).is_null());
            let p = heap.malloc(256);
            p.write_bytes(0xAB, 256);
            heap.free(p);
            let q = heap.calloc(16, 16);
            assert!(std::slice::from_raw_parts(q, 256).iter().all(|b| *b == 0));
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Malloc(usize),
        Calloc(usize),
        Memalign(u32, usize),
        Realloc(usize, usize),
        Free(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let size = prop_oneof![0usize..64, 0usize..4096, 0usize..70_000];
        prop_oneof![
            size.clone().prop_map(Op::Malloc),
            size.clone().prop_map(Op::Calloc),
            (4u32..13, size.clone()).prop_map(|(a, s)| Op::Memalign(a, s)),
            (any::<usize>(), size).prop_map(|(i, s)| Op::Realloc(i, s)),
            any::<usize>().prop_map(Op::Free),
        ]
    }

    /// A live block in the random test: where, how much was asked and is usable, its fill.
    struct Block {
        at: *mut u8,
        asked: usize,
        usable: usize,
        fill: u8,
    }

    impl Block {
        fn intact(&self) -> bool {
            // SAFETY: a live block of at least `asked` bytes.
            let bytes = unsafe { std::slice::from_raw_parts(self.at, self.asked) };
            bytes.iter().all(|b| *b == self.fill)
        }
        fn overlaps(&self, other: &Block) -> bool {
            let (a, b) = (self.at as usize, other.at as usize);
            a < b + other.usable && b < a + self.usable
        }
    }

    proptest! {
        /// Random use, with or without spare memory, keeps live blocks apart (whole usable
        /// sizes included) and their contents intact, honours alignments, and never writes
        /// past what the heap was handed.
        #[test]
        fn random_use_keeps_blocks_apart_and_intact(
            ops in prop::collection::vec(op(), 1..200),
            spare in any::<bool>(),
        ) {
            let buffer = Buffer::new(16 << 20, 65536, 5000);
            let mut heap = Heap::new(if spare { buffer.with_spare(1040, 4096) } else { buffer });
            let mut live: Vec<Block> = Vec::new();
            for (k, op) in ops.into_iter().enumerate() {
                let fill = (k % 250) as u8 + 1;
                // SAFETY: every pointer passed back is live from this heap.
                unsafe {
                    let (at, asked, align) = match op {
                        Op::Malloc(n) => (heap.malloc(n), n, MALLOC_ALIGN),
                        Op::Calloc(n) => {
                            let p = heap.calloc(n, 1);
                            prop_assert!(!p.is_null());
                            let bytes = std::slice::from_raw_parts(p, n);
                            prop_assert!(bytes.iter().all(|b| *b == 0));
                            (p, n, MALLOC_ALIGN)
                        }
                        Op::Memalign(a, n) => (heap.memalign(1 << a, n), n, 1 << a),
                        Op::Realloc(i, n) if !live.is_empty() => {
                            let old = live.swap_remove(i % live.len());
                            prop_assert!(old.intact());
                            let p = heap.realloc(old.at, n);
                            prop_assert!(!p.is_null());
                            let kept = std::slice::from_raw_parts(p, old.asked.min(n));
                            prop_assert!(kept.iter().all(|b| *b == old.fill));
                            (p, n, MALLOC_ALIGN)
                        }
                        Op::Free(i) if !live.is_empty() => {
                            let old = live.swap_remove(i % live.len());
                            prop_assert!(old.intact());
                            heap.free(old.at);
                            continue;
                        }
                        _ => continue,
                    };
                    prop_assert!(!at.is_null());
                    prop_assert_eq!(at as usize % align, 0);
                    let usable = heap.usable_size(at);
                    prop_assert!(usable >= asked, "usable {} < asked {}", usable, asked);
                    let block = Block { at, asked, usable, fill };
                    prop_assert!(live.iter().all(|other| !block.overlaps(other)));
                    // Write every usable byte, then the asked-for part's fill.
                    at.write_bytes(0xEE, usable);
                    at.write_bytes(fill, asked);
                    live.push(block);
                }
            }
            prop_assert!(live.iter().all(Block::intact));
            prop_assert_eq!(written_past_handed_out(&heap), 0);
            for block in live {
                // SAFETY: live.
                unsafe { heap.free(block.at) };
            }
        }
    }
}
