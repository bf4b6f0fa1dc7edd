//! Handing freed memory back to the system.
//!
//! mimalloc keeps freed pages for reuse until asked, and each thread's
//! heap is asked only by that thread (plus the segments of threads that
//! exited). So a thread that frees a lot at once, such as the backends a
//! reload removed (their history, registry entries, snapshot), calls
//! [`give_back`] itself; recently freed pages go back only on a later call,
//! so the threads that can free such bursts call it again a little later.
//!
//! How it hands pages back matters as much: see [`configure`].

/// Return this thread's free pages (and exited threads' free segments) to
/// the system.
pub fn give_back() {
    // SAFETY: a plain call; harmless if mimalloc is not the allocator
    // (its heap is then empty).
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// mimalloc's `mi_option_arena_eager_commit` (its `mi_option_e` order).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Set mimalloc up to give memory back for real; called from the binary's
/// constructors (`main.rs`), before anything is allocated: mimalloc takes
/// this option when it maps its first memory.
///
/// By default (on Linux, which overcommits) mimalloc commits its arenas
/// eagerly, and its purges of freed pages then left them resident: after a
/// burst of requests the idle process kept 2 KiB per connection it no
/// longer used (4 000 connections, 2026-12-07: 3.2 KiB per idle connection
/// after a burst, 1.1 with this, of which 1.0 is live). Committed on
/// demand, a purge decommits: the pages leave RSS.
pub fn configure() {
    // SAFETY: a plain call, before any thread but this one exists; harmless
    // if mimalloc is not the allocator.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) };
}
