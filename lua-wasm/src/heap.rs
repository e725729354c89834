//! Sealing the heap before the node snapshots snlua (pre-initialization).
//!
//! Every Lua service starts from one memory image, shared copy-on-write: a page stays shared
//! until the service writes to it. After the library is loaded and garbage collected, the
//! image's heap is full of free chunks, and the allocator would place a new service's first
//! allocations in them, one here and one there, making dozens of the image's pages private
//! to every service. Sealing fills those free chunks with allocations that are never freed,
//! so that a service's allocations come from fresh memory above the image instead. The
//! filled chunks cost nothing per service: they stay in the shared pages.

use std::ffi::c_void;

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
}

/// Larger than any free chunk of the pre-initialized heap (which is a few hundred KiB in
/// all), so the allocator carves it from the top of the heap: where fresh memory starts.
const PROBE: usize = 256 << 10;

/// The smallest request: the allocator's smallest chunk.
const SMALLEST: usize = 8;

/// Fills every free chunk below the top of the heap. Call it last, right before the
/// snapshot: what is freed afterwards can be reused again.
pub(crate) fn seal() {
    // SAFETY: plain C allocator calls; the probe is freed at once, the fillers never.
    unsafe {
        let probe = malloc(PROBE);
        if probe.is_null() {
            return;
        }
        let top = probe as usize;
        free(probe);
        // Largest requests first, so that big free chunks take few fillers; a request that
        // comes from the top means no free chunk of that size is left.
        let mut size = PROBE / 2;
        while size >= SMALLEST {
            loop {
                let filler = malloc(size);
                if filler.is_null() {
                    return;
                }
                if filler as usize >= top {
                    free(filler);
                    break;
                }
            }
            size /= 2;
        }
    }
}
