//! A worker's free lists of connection buffers, and the one place they grow.
//!
//! An idle client connection (before its first byte, and kept alive
//! between requests) holds no buffer: it waits for readability without one,
//! takes its buffers from here when bytes arrive and gives them back when
//! the exchange is over. So memory follows the requests in flight, not the
//! connections open: 10 000 idle connections cost no buffer at all.
//!
//! A buffer starts [`SMALL`], which holds nearly every request head and a
//! small response whole, and grows (doubling, to a power of two) only when
//! what it must hold does not fit: a large head, a streamed body. So a
//! burst of small requests costs small buffers, as nginx's 1 KiB header
//! buffer does. Buffers that grew are kept apart, and a response takes one
//! of those when one is free: with large responses in steady state, the
//! response head and body then arrive in one read, as before, and a buffer
//! that must grow takes a free grown one rather than allocating.
//!
//! Buffers given back are kept for the next exchange (no allocation per
//! request in steady state), and those the worker did not need for a whole
//! [`TRIM_INTERVAL`] are let go, so a burst does not pin its peak for ever.

use std::time::Duration;

use bytes::BytesMut;

use crate::free_list::FreeList;

/// How often surplus buffers are let go (see `worker::run_trimmer`).
pub const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// What a buffer starts with: a request head up to this size, and a
/// response head with a small body, need no growing.
pub const SMALL: usize = 2 * 1024;

/// Free buffers of one worker: [`SMALL`] ones, and ones that grew.
#[derive(Default)]
pub struct BufferPool {
    small: FreeList<BytesMut>,
    grown: FreeList<BytesMut>,
}

impl BufferPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer of at least [`SMALL`] bytes of capacity.
    pub fn take(&self) -> BytesMut {
        let buf = self.small.pop_if(|_| true);
        let mut buf = buf
            .or_else(|| self.grown.pop_if(|_| true))
            .unwrap_or_default();
        // An advanced buffer shows less capacity: this reclaims its front
        // (no allocation); a new one is allocated here.
        buf.reserve(SMALL);
        buf
    }

    /// An empty buffer for a response: a grown one when one is free (the
    /// traffic needed it lately: the response likely fits it whole), else
    /// a small one.
    pub fn take_for_response(&self) -> BytesMut {
        match self.grown.pop_if(|_| true) {
            Some(buf) => buf,
            None => self.take(),
        }
    }

    /// Give back `buf` (its contents are dropped). One larger than `keep`
    /// bytes (grown for a large body) is let go rather than kept.
    pub fn give(&self, mut buf: BytesMut, keep: usize) {
        if buf.capacity() == 0 || buf.capacity() > keep {
            return;
        }
        buf.clear();
        if buf.capacity() > SMALL {
            self.grown.push(buf);
        } else {
            self.small.push(buf);
        }
    }

    /// Make room in `buf` for `additional` more bytes, keeping its
    /// contents: a free buffer that fits takes its place (the bytes are
    /// copied, the old buffer goes back), else it grows to the next power
    /// of two, so that what it held fits again next time with room for
    /// more.
    pub fn reserve(&self, buf: &mut BytesMut, additional: usize) {
        let need = buf.len() + additional;
        if buf.capacity() >= need {
            return;
        }
        let list = if need <= SMALL {
            &self.small
        } else {
            &self.grown
        };
        match list.pop_if(|b| b.capacity() >= need) {
            Some(mut other) => {
                other.extend_from_slice(buf);
                let old = std::mem::replace(buf, other);
                self.give(old, usize::MAX);
            }
            None => buf.reserve(need.max(SMALL).next_power_of_two() - buf.len()),
        }
    }

    /// Room in `buf` to read at least one more byte: a full buffer doubles
    /// (up to `limit` bytes, when that is more than it holds), for reading
    /// a message head whose end is not here yet.
    pub fn grow_if_full(&self, buf: &mut BytesMut, limit: usize) {
        if buf.capacity() > buf.len() {
            return;
        }
        let want = (buf.capacity() * 2).min(limit).max(buf.len() + 1);
        self.reserve(buf, want - buf.len());
    }

    /// Room in `buf` to read a streamed body into: `size` bytes when it
    /// holds nothing (fewer, larger reads), at least one more when full.
    pub fn room_for_body(&self, buf: &mut BytesMut, size: usize) {
        if buf.is_empty() {
            self.reserve(buf, size);
        } else {
            self.grow_if_full(buf, size);
        }
    }

    /// Let go of the buffers that stayed free since the last trim; how
    /// many went.
    pub fn trim(&self) -> usize {
        self.small.trim(drop) + self.grown.trim(drop)
    }

    /// Buffers free now.
    pub fn free_count(&self) -> usize {
        self.small.len() + self.grown.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_given_back_are_taken_again_without_allocating() {
        let pool = BufferPool::new();
        let mut buf = pool.take();
        assert!(buf.capacity() >= SMALL && buf.capacity() < 2 * SMALL);
        buf.extend_from_slice(b"request bytes");
        let ptr = buf.as_ptr();
        pool.give(buf, 4 * SMALL);
        let again = pool.take();
        assert_eq!(again.as_ptr(), ptr, "the same allocation comes back");
        assert!(again.is_empty() && again.capacity() >= SMALL);
    }

    #[test]
    fn oversized_and_empty_buffers_are_not_kept() {
        let pool = BufferPool::new();
        pool.give(BytesMut::with_capacity(64 * 1024), 16 * 1024);
        pool.give(BytesMut::new(), 16 * 1024);
        assert_eq!(pool.free_count(), 0);
    }

    #[test]
    fn a_buffer_grows_to_a_power_of_two_keeping_its_bytes() {
        let pool = BufferPool::new();
        let mut buf = pool.take();
        buf.extend_from_slice(&[b'x'; SMALL]);
        pool.grow_if_full(&mut buf, 16 * 1024);
        assert_eq!(buf.capacity(), 2 * SMALL, "doubled");
        pool.reserve(&mut buf, 16 * 1024);
        assert_eq!(buf.capacity(), 32 * 1024, "head and body fit next time");
        assert_eq!(&buf[..], &[b'x'; SMALL][..]);
        // A full buffer at the limit still gets room for one more byte.
        let mut full = BytesMut::with_capacity(SMALL);
        full.extend_from_slice(&[b'y'; SMALL]);
        pool.grow_if_full(&mut full, SMALL);
        assert!(full.capacity() > SMALL);
    }

    #[test]
    fn a_response_takes_a_grown_buffer_and_growing_reuses_one() {
        let pool = BufferPool::new();
        pool.give(BytesMut::with_capacity(32 * 1024), 64 * 1024);
        pool.give(BytesMut::with_capacity(SMALL), 64 * 1024);
        assert_eq!(pool.take().capacity(), SMALL, "a head takes a small one");
        let grown = pool.take_for_response();
        assert_eq!(grown.capacity(), 32 * 1024, "a response a grown one");
        let ptr = grown.as_ptr();
        pool.give(grown, 64 * 1024);
        // A small buffer that must grow takes the free grown one, bytes
        // and all, and the small one goes back.
        let mut small = pool.take();
        small.extend_from_slice(b"head");
        pool.reserve(&mut small, 16 * 1024);
        assert_eq!(small.as_ptr(), ptr);
        assert_eq!(&small[..], b"head");
        assert_eq!(pool.take().capacity(), SMALL);
    }

    #[test]
    fn a_trim_lets_go_only_of_buffers_unused_since_the_last() {
        let pool = BufferPool::new();
        // A burst of four exchanges, then one at a time.
        let burst: Vec<_> = (0..4).map(|_| pool.take()).collect();
        burst.into_iter().for_each(|b| pool.give(b, 4 * SMALL));
        pool.trim(); // the interval of the burst: all were needed
        assert_eq!(pool.free_count(), 4);
        for _ in 0..10 {
            let b = pool.take();
            pool.give(b, 4 * SMALL);
        }
        pool.trim(); // three stayed free the whole interval
        assert_eq!(pool.free_count(), 1);
        pool.trim(); // and the last was not needed since
        assert_eq!(pool.free_count(), 0);
    }

    #[test]
    fn an_interval_without_requests_lets_go_of_the_free_list_itself() {
        let pool = BufferPool::new();
        let burst: Vec<_> = (0..1000).map(|_| pool.take()).collect();
        burst.into_iter().for_each(|b| pool.give(b, 4 * SMALL));
        pool.trim(); // the burst's interval keeps what it needed
        assert_eq!(pool.free_count(), 1000);
        assert!(pool.small.room() >= 1000);
        pool.trim(); // nothing asked for since: all of it goes
        assert_eq!(pool.free_count(), 0);
        assert_eq!(pool.small.room(), 0, "the list too");
    }
}
