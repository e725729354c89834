//! Prefaulting: the pages of linear memory a module's init is known to write are made
//! present and writable, in one system call, before that init runs.
//!
//! Why: on the virtual machines of BENCHMARKS.md a page's first write costs a fault of
//! 2–4 µs, and a page of the memory image that is read before it is written costs a
//! second, copy-on-write fault whose TLB flush interrupts every other core running the
//! process (~25 µs under a hypervisor). A Rust service's start writes two pages: the top of
//! its stack and the image's last page (`.data`, `.bss` and the SDK heap's first chunk); with
//! wasi-libc's allocator it wrote a third, that allocator's end marker. Populating them first
//! (`MADV_POPULATE_WRITE`, Linux 5.14) took the spawn rate of idle Rust services up by about
//! 40%, and Lua's by about 25%.
//!
//! Which pages: learned from the module's first starts — those privately written (present,
//! anonymous and mapped once, per `/proc/self/pagemap`) when init returned, intersected
//! over [`LEARN_STARTS`] starts so that pages only one start's arguments touched are left
//! out — and at most [`MAX_PAGES`]. Where the kernel lacks the call, or off Linux, nothing
//! is populated and services start as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// Starts a module's learned page set is the intersection of.
pub(crate) const LEARN_STARTS: u32 = 3;

/// Most pages populated for one start (1 MiB of 4 KiB pages): a module whose init writes
/// more is left to fault its pages in.
pub(crate) const MAX_PAGES: usize = 256;

/// Set when the kernel refused `MADV_POPULATE_WRITE` as unknown: no module tries again.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// What one module knows of the pages its init writes.
pub(crate) struct Prefault {
    state: Mutex<State>,
}

enum State {
    /// Starts seen so far, and the pages (sorted indices) written in every one of them.
    Learning { starts: u32, pages: Vec<u32> },
    /// Runs of pages to populate: (first page, number of pages).
    Known(Arc<[(u32, u32)]>),
    /// Nothing to populate: disabled, nothing common, too much, or no pagemap.
    Off,
}

impl Prefault {
    /// A module's prefault state; `enabled` is the node's `wasm_prefault`.
    pub(crate) fn new(enabled: bool) -> Prefault {
        let state = if enabled && cfg!(target_os = "linux") {
            State::Learning {
                starts: 0,
                pages: Vec::new(),
            }
        } else {
            State::Off
        };
        Prefault {
            state: Mutex::new(state),
        }
    }

    /// True while the module's first starts are still being learned from.
    pub(crate) fn learning(&self) -> bool {
        matches!(*lock(&self.state), State::Learning { .. })
    }

    /// The learned runs of pages, once known.
    pub(crate) fn known(&self) -> Option<Arc<[(u32, u32)]>> {
        match &*lock(&self.state) {
            State::Known(runs) => Some(runs.clone()),
            _ => None,
        }
    }

    /// Populates the known pages of a linear memory just instantiated, at `base`, of which
    /// `len` bytes are accessible. Failures only mean the init faults its pages in itself.
    ///
    /// # Safety
    /// `base..base + len` must be the accessible part of a linear memory that stays mapped
    /// for the duration of the call.
    pub(crate) unsafe fn populate(&self, base: *mut u8, len: usize) {
        if UNSUPPORTED.load(Ordering::Relaxed) {
            return;
        }
        if let Some(runs) = self.known() {
            // SAFETY: as this function's contract.
            unsafe { populate_runs(base, len, &runs) };
        }
    }

    /// Learns from a start whose init just returned successfully, while the module is still
    /// learning: `base` and `len` locate its linear memory (only its page map is read).
    pub(crate) fn learn(&self, base: *const u8, len: usize) {
        if !self.learning() {
            return;
        }
        match written_pages(base, len) {
            Ok(written) => self.learn_pages(written),
            Err(e) => {
                tracing::debug!("prefault: no page map ({e}); pages are faulted in");
                *lock(&self.state) = State::Off;
            }
        }
    }

    /// Folds one start's written pages (sorted) into what is known.
    fn learn_pages(&self, written: Vec<u32>) {
        let mut state = lock(&self.state);
        let State::Learning { starts, pages } = &*state else {
            return;
        };
        let common = if *starts == 0 {
            written
        } else {
            intersect(pages, &written)
        };
        let starts = starts + 1;
        // A large first set may still shrink: the cap applies to what all starts share.
        *state = if common.is_empty() {
            State::Off
        } else if starts >= LEARN_STARTS {
            if common.len() > MAX_PAGES {
                State::Off
            } else {
                State::Known(runs(&common).into())
            }
        } else {
            State::Learning {
                starts,
                pages: common,
            }
        };
    }
}

/// The pages in both sorted lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut both) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    both
}

/// Sorted page indices as runs of consecutive pages: one system call per run.
fn runs(pages: &[u32]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &page in pages {
        match runs.last_mut() {
            Some((first, count)) if *first + *count == page => *count += 1,
            _ => runs.push((page, 1)),
        }
    }
    runs
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Populates `runs` of pages of the memory at `base` (`len` accessible bytes), writable.
///
/// # Safety
/// As [`Prefault::populate`].
#[cfg(target_os = "linux")]
unsafe fn populate_runs(base: *mut u8, len: usize, runs: &[(u32, u32)]) {
    let page = page_size();
    for &(first, count) in runs {
        let start = first as usize * page;
        let end = start.saturating_add(count as usize * page).min(len);
        if start >= end {
            continue;
        }
        // SAFETY: the range lies inside the accessible memory (the caller's contract);
        // MADV_POPULATE_WRITE faults its pages in as a write would, without changing them.
        let result = unsafe {
            libc::madvise(
                base.add(start).cast(),
                end - start,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if result != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EINVAL) {
                tracing::debug!("prefault: MADV_POPULATE_WRITE unsupported ({error})");
                UNSUPPORTED.store(true, Ordering::Relaxed);
            }
            return;
        }
    }
}

#[cfg(not(target_os = "linux"))]
unsafe fn populate_runs(_base: *mut u8, _len: usize, _runs: &[(u32, u32)]) {}

/// The pages of `base..base + len` this process has privately written: present, anonymous
/// (a copy-on-write copy or a written zero page, not the shared image or zero page) and
/// mapped only here.
#[cfg(target_os = "linux")]
fn written_pages(base: *const u8, len: usize) -> std::io::Result<Vec<u32>> {
    use std::os::unix::fs::FileExt;
    const PRESENT: u64 = 1 << 63;
    const FILE_OR_SHARED: u64 = 1 << 61;
    const EXCLUSIVE: u64 = 1 << 56;
    let page = page_size();
    let count = len / page;
    let mut entries = vec![0u8; count * 8];
    let map = std::fs::File::open("/proc/self/pagemap")?;
    map.read_exact_at(&mut entries, (base as usize / page * 8) as u64)?;
    Ok(entries
        .chunks_exact(8)
        .enumerate()
        .filter_map(|(index, entry)| {
            let entry = u64::from_le_bytes(entry.try_into().expect("chunks of 8"));
            let written =
                entry & PRESENT != 0 && entry & FILE_OR_SHARED == 0 && entry & EXCLUSIVE != 0;
            written.then(|| u32::try_from(index).ok()).flatten()
        })
        .collect())
}

#[cfg(not(target_os = "linux"))]
fn written_pages(_base: *const u8, _len: usize) -> std::io::Result<Vec<u32>> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// An anonymous private mapping of `pages` pages, unmapped on drop.
    struct Mapping {
        base: *mut u8,
        len: usize,
    }

    impl Mapping {
        fn new(pages: usize) -> Mapping {
            let len = pages * page_size();
            // SAFETY: a fresh anonymous mapping, owned by the returned value.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(base, libc::MAP_FAILED);
            Mapping {
                base: base.cast(),
                len,
            }
        }

        fn write(&self, page: usize) {
            // SAFETY: inside the mapping.
            unsafe { self.base.add(page * page_size()).write_volatile(1) };
        }

        fn read(&self, page: usize) -> u8 {
            // SAFETY: inside the mapping.
            unsafe { self.base.add(page * page_size()).read_volatile() }
        }

        fn resident(&self) -> Vec<usize> {
            let mut vec = vec![0u8; self.len / page_size()];
            // SAFETY: the mapping's range, and a vector of one byte per page.
            let result = unsafe { libc::mincore(self.base.cast(), self.len, vec.as_mut_ptr()) };
            assert_eq!(result, 0);
            (0..vec.len()).filter(|&i| vec[i] & 1 != 0).collect()
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }

    #[test]
    fn written_pages_are_those_written_not_those_only_read() {
        let map = Mapping::new(6);
        map.write(1);
        assert_eq!(map.read(3), 0);
        map.write(4);
        map.read(4);
        assert_eq!(written_pages(map.base, map.len).unwrap(), vec![1, 4]);
    }

    #[test]
    fn populating_makes_exactly_the_known_runs_resident_and_keeps_their_contents() {
        let map = Mapping::new(8);
        map.write(6);
        let prefault = Prefault::new(true);
        for _ in 0..LEARN_STARTS {
            prefault.learn_pages(vec![1, 2, 6]);
        }
        assert_eq!(&*prefault.known().unwrap(), &[(1, 2), (6, 1)]);
        // SAFETY: the mapping is accessible for its whole length.
        unsafe { prefault.populate(map.base, map.len) };
        assert_eq!(map.resident(), vec![1, 2, 6]);
        assert_eq!(map.read(6), 1, "populating does not change a page");
        assert_eq!(written_pages(map.base, map.len).unwrap(), vec![1, 2, 6]);
    }

    #[test]
    fn runs_past_the_accessible_length_are_cut_there() {
        let map = Mapping::new(4);
        let prefault = Prefault::new(true);
        for _ in 0..LEARN_STARTS {
            prefault.learn_pages(vec![2, 3, 4, 5, 9]);
        }
        // Only the first three pages are "accessible": run (2, 4) is cut to page 2, run
        // (9, 1) is skipped.
        // SAFETY: a prefix of the mapping.
        unsafe { prefault.populate(map.base, 3 * page_size()) };
        assert_eq!(map.resident(), vec![2]);
    }

    #[test]
    fn the_learned_set_is_what_every_one_of_the_first_starts_wrote() {
        let prefault = Prefault::new(true);
        prefault.learn_pages(vec![0, 3, 4, 9]);
        prefault.learn_pages(vec![3, 4, 5, 9]);
        assert!(prefault.learning());
        assert!(
            prefault.known().is_none(),
            "nothing populated while learning"
        );
        prefault.learn_pages(vec![1, 3, 4, 9, 10]);
        assert_eq!(&*prefault.known().unwrap(), &[(3, 2), (9, 1)]);
        // Later starts change nothing.
        prefault.learn_pages(vec![20]);
        assert_eq!(&*prefault.known().unwrap(), &[(3, 2), (9, 1)]);
    }

    #[test]
    fn nothing_common_too_many_pages_or_disabled_turns_it_off() {
        let disjoint = Prefault::new(true);
        disjoint.learn_pages(vec![1, 2]);
        disjoint.learn_pages(vec![3]);
        assert!(!disjoint.learning() && disjoint.known().is_none());

        let large = Prefault::new(true);
        for _ in 0..LEARN_STARTS {
            large.learn_pages((0..=MAX_PAGES as u32).collect());
        }
        assert!(!large.learning() && large.known().is_none());

        // A first start that wrote much more than the others does not spoil the set.
        let shrinking = Prefault::new(true);
        shrinking.learn_pages((0..4 * MAX_PAGES as u32).collect());
        shrinking.learn_pages(vec![5, 6]);
        shrinking.learn_pages(vec![5, 6, 700]);
        assert_eq!(&*shrinking.known().unwrap(), &[(5, 2)]);

        let off = Prefault::new(false);
        assert!(!off.learning());
        off.learn_pages(vec![1]);
        assert!(off.known().is_none());
    }

    #[test]
    fn runs_coalesce_consecutive_pages() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[1, 2, 3, 7, 8, 10]), vec![(1, 3), (7, 2), (10, 1)]);
        assert_eq!(intersect(&[1, 2, 5, 8], &[2, 3, 5, 9]), vec![2, 5]);
    }
}
