//! Giving memory back: one huge message or event must not leave the runner's
//! resident memory high for the rest of its life.
//!
//! glibc serves a large allocation from `mmap` and returns it at once when it is
//! freed, but it also raises its threshold to the size of every such block freed
//! (up to 32 MiB), so after one 17 MiB message every later large buffer comes from
//! the heap, whose freed pages stay resident. Fixing the threshold turns that
//! adjustment off; the trim threshold bounds what a heap keeps at its top.

/// Allocations of at least this size are mmapped and unmapped when freed.
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Free memory at a heap's top past this is given back.
#[cfg(target_env = "gnu")]
const TRIM_THRESHOLD: libc::c_int = 1024 * 1024;

/// Sets the allocator up so that large buffers are returned to the system when
/// freed. Call once, at start, before the runtime's threads exist.
pub fn give_back_large_buffers() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes two integers and only changes allocator parameters;
    // called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns what the heaps hold free to the system: after a big message or event
/// is done with, its pieces that did not come from `mmap` (many small strings)
/// would otherwise stay resident.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
