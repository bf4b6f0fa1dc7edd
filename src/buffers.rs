//! A worker's free list of connection buffers.
//!
//! An idle client connection (before its first byte, and kept alive
//! between requests) holds no buffer: it waits for readability without one,
//! takes its buffers from here when bytes arrive and gives them back when
//! the exchange is over. So memory follows the requests in flight, not the
//! connections open: 10 000 idle connections cost no buffer at all.
//!
//! Buffers given back are kept for the next exchange (no allocation per
//! request in steady state), and those the worker did not need for a whole
//! [`TRIM_INTERVAL`] are let go, so a burst does not pin its peak for ever.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use bytes::BytesMut;

/// How often surplus buffers are let go (see `worker::run_trimmer`).
pub const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// Free buffers of one worker.
pub struct BufferPool {
    free: RefCell<Vec<BytesMut>>,
    /// The fewest buffers left free since the last trim: that many were
    /// never needed in the interval.
    low_water: Cell<usize>,
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new()
    }
}

impl BufferPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self {
            free: RefCell::new(Vec::new()),
            low_water: Cell::new(0),
        }
    }

    /// A buffer of at least `size` bytes of capacity, empty.
    pub fn take(&self, size: usize) -> BytesMut {
        let mut free = self.free.borrow_mut();
        let buf = free.pop();
        self.low_water.set(self.low_water.get().min(free.len()));
        match buf {
            Some(mut buf) => {
                if buf.capacity() < size {
                    buf.reserve(size);
                }
                buf
            }
            None => BytesMut::with_capacity(size),
        }
    }

    /// Give back `buf` (its contents are dropped). One larger than `keep`
    /// bytes (grown for a large body) is let go rather than kept.
    pub fn give(&self, mut buf: BytesMut, keep: usize) {
        if buf.capacity() == 0 || buf.capacity() > keep {
            return;
        }
        buf.clear();
        self.free.borrow_mut().push(buf);
    }

    /// Let go of the buffers that stayed free since the last trim; how
    /// many went.
    pub fn trim(&self) -> usize {
        let mut free = self.free.borrow_mut();
        let surplus = self.low_water.get().min(free.len());
        // Not shrunk: a slot is 32 bytes, and regrowing would allocate.
        free.drain(..surplus);
        self.low_water.set(free.len());
        surplus
    }

    /// Buffers free now.
    pub fn free_count(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_given_back_are_taken_again_without_allocating() {
        let pool = BufferPool::new();
        let mut buf = pool.take(1024);
        buf.extend_from_slice(b"request bytes");
        let ptr = buf.as_ptr();
        pool.give(buf, 4096);
        let again = pool.take(1024);
        assert_eq!(again.as_ptr(), ptr, "the same allocation comes back");
        assert!(again.is_empty() && again.capacity() >= 1024);
    }

    #[test]
    fn oversized_and_empty_buffers_are_not_kept() {
        let pool = BufferPool::new();
        pool.give(BytesMut::with_capacity(64 * 1024), 16 * 1024);
        pool.give(BytesMut::new(), 16 * 1024);
        assert_eq!(pool.free_count(), 0);
    }

    #[test]
    fn a_trim_lets_go_only_of_buffers_unused_since_the_last() {
        let pool = BufferPool::new();
        // A burst of four exchanges, then one at a time.
        let burst: Vec<_> = (0..4).map(|_| pool.take(1024)).collect();
        burst.into_iter().for_each(|b| pool.give(b, 4096));
        pool.trim(); // the interval of the burst: all were needed
        assert_eq!(pool.free_count(), 4);
        for _ in 0..10 {
            let b = pool.take(1024);
            pool.give(b, 4096);
        }
        pool.trim(); // three stayed free the whole interval
        assert_eq!(pool.free_count(), 1);
        pool.trim(); // and the last was not needed since
        assert_eq!(pool.free_count(), 0);
    }
}
