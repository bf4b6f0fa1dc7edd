//! The one file that knows monoio's owned-buffer rules.
//!
//! monoio (io_uring) reads into and writes from buffers it owns for the
//! duration of the operation, handing them back with the result. These
//! helpers keep that dance in one place: a caller's `&mut BytesMut` is moved
//! in and put back. A read on a `BytesMut` writes at its *start*, so reads
//! here append by reading into the slice past `len()`.
//!
//! Timeouts are the worker's coarse [`Deadlines`]: a wait past its deadline
//! has its socket side shut down, so the operation itself ends and hands the
//! buffer back. After a timed-out read the socket reads only end of file,
//! after a timed-out write it cannot be written: the caller closes it.

use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use crate::deadline::{Deadlines, Direction};

/// A read that failed or took too long.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing arrived within the timeout.
    Timeout,
    /// The socket failed.
    Io(io::Error),
}

/// Make sure `buf` has free space to read into, without growing it past
/// `capacity` when it holds no unread bytes. Reuses the allocation when the
/// buffer is unique (the normal case), so steady state does not allocate.
pub fn make_room(buf: &mut BytesMut, capacity: usize) {
    if buf.capacity() == buf.len() || (buf.is_empty() && buf.capacity() < capacity) {
        buf.reserve(capacity.saturating_sub(buf.len()).max(1));
    }
}

/// Append up to `limit` bytes from `stream` to `buf`. `Ok(0)` means the
/// peer closed (or `limit` was 0).
pub async fn read_some<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
) -> io::Result<usize> {
    let owned = std::mem::take(buf);
    let start = owned.len();
    let end = start + limit.min(owned.capacity() - start);
    let (result, slice) = stream.read(owned.slice_mut(start..end)).await;
    *buf = slice.into_inner();
    result
}

/// [`read_some`] that gives up after `timeout` (as measured by `deadlines`).
pub async fn read_some_timeout<S: AsyncReadRent + AsRawFd>(
    deadlines: &Deadlines,
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
    timeout: Duration,
) -> Result<usize, ReadError> {
    let wait = deadlines.arm(stream.as_raw_fd(), Direction::Read, timeout);
    let result = read_some(stream, buf, limit).await;
    if wait.expired() {
        return Err(ReadError::Timeout);
    }
    result.map_err(ReadError::Io)
}

/// Write all of `buf` to `stream`; `buf` comes back unchanged (not cleared).
pub async fn write_all<S: AsyncWriteRent>(stream: &mut S, buf: &mut BytesMut) -> io::Result<()> {
    let owned = std::mem::take(buf);
    let (result, owned) = stream.write_all(owned).await;
    *buf = owned;
    result.map(|_| ())
}

/// [`write_all`] that gives up after `timeout` (a peer that stopped
/// reading); the error is then `TimedOut`.
pub async fn write_all_timeout<S: AsyncWriteRent + AsRawFd>(
    deadlines: &Deadlines,
    stream: &mut S,
    buf: &mut BytesMut,
    timeout: Duration,
) -> io::Result<()> {
    let wait = deadlines.arm(stream.as_raw_fd(), Direction::Write, timeout);
    let result = write_all(stream, buf).await;
    if wait.expired() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    result
}

/// Write `buf[range]` to `stream`, giving up after `timeout`, without
/// moving or copying the bytes: `buf` comes back unchanged.
pub async fn write_range_timeout<S: AsyncWriteRent + AsRawFd>(
    deadlines: &Deadlines,
    stream: &mut S,
    buf: &mut BytesMut,
    range: Range<usize>,
    timeout: Duration,
) -> io::Result<()> {
    let wait = deadlines.arm(stream.as_raw_fd(), Direction::Write, timeout);
    let (result, slice) = stream.write_all(std::mem::take(buf).slice(range)).await;
    *buf = slice.into_inner();
    if wait.expired() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    result.map(|_| ())
}

/// Write a static byte string (e.g. `100 Continue`), giving up after
/// `timeout`.
pub async fn write_static_timeout<S: AsyncWriteRent + AsRawFd>(
    deadlines: &Deadlines,
    stream: &mut S,
    bytes: &'static [u8],
    timeout: Duration,
) -> io::Result<()> {
    let wait = deadlines.arm(stream.as_raw_fd(), Direction::Write, timeout);
    let (result, _) = stream.write_all(bytes).await;
    if wait.expired() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    result.map(|_| ())
}

/// Make closing `stream` send RST instead of FIN (SO_LINGER 0): the way to
/// tell a peer that what it received was cut short, where a FIN would look
/// like a complete close-delimited body.
pub fn reset_on_close(stream: &monoio::net::TcpStream) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the fd belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let _ = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO));
}
