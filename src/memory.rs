//! Handing freed memory back to the system.
//!
//! mimalloc keeps freed pages for reuse until asked, and each thread's
//! heap is asked only by that thread (plus the segments of threads that
//! exited). So a thread that frees a lot at once, such as the backends a
//! reload removed (their history, registry entries, snapshot), calls
//! [`give_back`] itself; recently freed pages go back only on a later call,
//! so the threads that can free such bursts call it again a little later.

/// Return this thread's free pages (and exited threads' free segments) to
/// the system.
pub fn give_back() {
    // SAFETY: a plain call; harmless if mimalloc is not the allocator
    // (its heap is then empty).
    unsafe { libmimalloc_sys::mi_collect(true) };
}
