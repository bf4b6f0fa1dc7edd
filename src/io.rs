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
use std::os::fd::{AsRawFd, RawFd};
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

/// Let go of an empty buffer's memory when it holds more than `keep`
/// bytes: one large body must not pin a large buffer to a keep-alive
/// connection for the rest of its life. Buffers within `keep` (all of them,
/// in steady state, when bodies stay within it) are left alone, so this
/// costs no allocation per request; a dropped one is reallocated at its
/// normal size by [`make_room`] when next used.
pub fn release_if_oversized(buf: &mut BytesMut, keep: usize) {
    if buf.is_empty() && buf.capacity() > keep {
        *buf = BytesMut::new();
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

/// Why [`read_until`] stopped before what it waited for arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadShort {
    /// The peer closed, or the socket failed.
    Closed,
    /// `limit` bytes are held, and they are still not enough.
    Full,
}

/// Append to `buf` from `stream` until `enough(buf)`, holding no more than
/// `limit` bytes: for reading one message head, whose end only a parser
/// can see (the caller's `enough` asks it). No timeout: the caller bounds
/// the wait.
pub async fn read_until<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
    mut enough: impl FnMut(&[u8]) -> bool,
) -> Result<(), ReadShort> {
    while !enough(buf) {
        if buf.len() >= limit {
            return Err(ReadShort::Full);
        }
        make_room(buf, limit);
        match read_some(stream, buf, limit - buf.len()).await {
            Ok(0) | Err(_) => return Err(ReadShort::Closed),
            Ok(_) => {}
        }
    }
    Ok(())
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
    read_while_armed(wait, stream, buf, limit).await
}

/// [`read_some`] under a registered wait: a timeout if the sweeper ended it.
async fn read_while_armed<S: AsyncReadRent>(
    wait: crate::deadline::Armed<'_>,
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
) -> Result<usize, ReadError> {
    let result = read_some(stream, buf, limit).await;
    if wait.expired() {
        return Err(ReadError::Timeout);
    }
    result.map_err(ReadError::Io)
}

/// [`read_some_timeout`] for a kept-alive connection waiting for its next
/// request: a drain ends the wait early (see [`Deadlines::arm_idle`]).
pub async fn read_idle_timeout<S: AsyncReadRent + AsRawFd>(
    deadlines: &Deadlines,
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
    timeout: Duration,
) -> Result<usize, ReadError> {
    let wait = deadlines.arm_idle(stream.as_raw_fd(), timeout);
    read_while_armed(wait, stream, buf, limit).await
}

/// Wait, holding no buffer, until `stream` has bytes (or end of file) to
/// read: a kept-alive connection waiting for its next request, or a new one
/// for its first, costs no buffer while it waits. Ends like
/// [`read_idle_timeout`]: on timeout, and early in a drain.
pub async fn readable_idle_timeout(
    deadlines: &Deadlines,
    stream: &monoio::net::TcpStream,
    timeout: Duration,
) -> Result<(), ReadError> {
    let wait = deadlines.arm_idle(stream.as_raw_fd(), timeout);
    // Not relaxed: on the epoll driver a relaxed wait returns at once while
    // the socket's last readiness is cached (after every response), and
    // the connection would then wait for its next request in a read,
    // holding its buffers (9.3 KiB per idle connection against 2.9,
    // 2026-12-07). This asks the socket (one poll(2)) first; on io_uring
    // the flag changes nothing.
    let result = stream.readable(false).await;
    if wait.expired() {
        return Err(ReadError::Timeout);
    }
    result.map_err(ReadError::Io)
}

/// One non-blocking `recv` on `fd` into `buf`'s free room (at most
/// `limit` bytes), right now: `Some(n)` for `n` bytes read (0: the peer
/// closed), `None` if nothing was there (or the socket failed: the
/// caller's io_uring read then meets and reports it).
///
/// For the read that follows a readiness wait (a kept-alive connection's
/// next request, `Connection::wait_for_request`): the bytes are there,
/// and one `recv(2)` takes them at once, where an io_uring read would
/// suspend the task until the next turn of the loop collects it.
pub fn read_now(fd: RawFd, buf: &mut BytesMut, limit: usize) -> Option<usize> {
    let room = limit.min(buf.capacity() - buf.len());
    if room == 0 {
        return None;
    }
    let spare = &mut buf.spare_capacity_mut()[..room];
    let n = crate::syscall::recv_uninit(fd, spare, libc::MSG_DONTWAIT);
    let n = usize::try_from(n).ok()?;
    // SAFETY: the kernel initialized the first `n` bytes of the room.
    unsafe { buf.set_len(buf.len() + n) };
    Some(n)
}

/// One non-blocking `send` of `bytes` on `fd`, right now; how many went
/// (0 on any error: the caller's io_uring write then meets and reports it).
fn send_now(fd: RawFd, bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        return 0;
    }
    let n = crate::syscall::send(fd, bytes, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    usize::try_from(n).unwrap_or(0)
}

/// Write all of `buf` to `stream`, giving up after `timeout` (a peer that
/// stopped reading; the error is then `TimedOut`). `buf` comes back
/// unchanged (not cleared).
pub async fn write_all_timeout<S: AsyncWriteRent + AsRawFd>(
    deadlines: &Deadlines,
    stream: &mut S,
    buf: &mut BytesMut,
    timeout: Duration,
) -> io::Result<()> {
    let all = 0..buf.len();
    write_range_timeout(deadlines, stream, buf, all, timeout).await
}

/// Write `buf[range]` to `stream`, giving up after `timeout`, without
/// moving or copying the bytes: `buf` comes back unchanged.
///
/// Almost every write fits in the socket's send buffer, so it is first
/// tried with one non-blocking `send`, as nginx and HAProxy write. Through
/// io_uring, even a write that completes at once is only seen done on the
/// next turn of the event loop, and waits behind every other completion of
/// that turn: two such turns per request widened the latency tail under
/// load. What `send` leaves goes through io_uring and may wait.
pub async fn write_range_timeout<S: AsyncWriteRent + AsRawFd>(
    deadlines: &Deadlines,
    stream: &mut S,
    buf: &mut BytesMut,
    range: Range<usize>,
    timeout: Duration,
) -> io::Result<()> {
    let sent = send_now(stream.as_raw_fd(), &buf[range.clone()]);
    if sent == range.len() {
        return Ok(());
    }
    let rest = range.start + sent..range.end;
    let wait = deadlines.arm(stream.as_raw_fd(), Direction::Write, timeout);
    let (result, slice) = stream.write_all(std::mem::take(buf).slice(rest)).await;
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
    let sent = send_now(stream.as_raw_fd(), bytes);
    if sent == bytes.len() {
        return Ok(());
    }
    let wait = deadlines.arm(stream.as_raw_fd(), Direction::Write, timeout);
    let (result, _) = stream.write_all(&bytes[sent..]).await;
    if wait.expired() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    result.map(|_| ())
}

/// Append up to `limit` bytes from `stream` to `buf` through a shared
/// reference: `recv` what is there, else wait until the socket is readable
/// and try again. `Ok(0)` means the peer closed (or a deadline shut the
/// read side). For a socket another task writes at the same time (a
/// tunnel's two directions, a body going up while its answer is watched
/// for): monoio's reads and writes each want the stream to themselves.
pub async fn read_shared(
    stream: &monoio::net::TcpStream,
    buf: &mut BytesMut,
    limit: usize,
) -> io::Result<usize> {
    let fd = stream.as_raw_fd();
    loop {
        let spare = buf.spare_capacity_mut();
        let room = spare.len().min(limit);
        if room == 0 {
            return Ok(0);
        }
        // SAFETY: `spare` is `room` writable bytes owned by `buf`, live for
        // the call; recv writes at most `room` of them and says how many.
        let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), room, libc::MSG_DONTWAIT) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: recv initialised the first `n` spare bytes.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => stream.readable(false).await?,
            io::ErrorKind::Interrupted => {}
            _ => return Err(err),
        }
    }
}

/// Write all of `bytes` to `stream` through a shared reference (see
/// [`read_shared`]): `send` what the socket takes, wait until it is
/// writable for the rest, giving up after `timeout` (`TimedOut`).
pub async fn write_shared_timeout(
    deadlines: &Deadlines,
    stream: &monoio::net::TcpStream,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let mut sent = 0;
    let mut wait = None;
    while sent < bytes.len() {
        let n = crate::syscall::send(fd, &bytes[sent..], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
        if n >= 0 {
            sent += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => {
                let armed: &crate::deadline::Armed<'_> =
                    wait.get_or_insert_with(|| deadlines.arm(fd, Direction::Write, timeout));
                if armed.expired() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                stream.writable(false).await?;
            }
            io::ErrorKind::Interrupted => {}
            _ if wait.as_ref().is_some_and(|w| w.expired()) => {
                return Err(io::ErrorKind::TimedOut.into())
            }
            _ => return Err(err),
        }
    }
    Ok(())
}

/// Shut down `how` (`libc::SHUT_WR`, ...) of the socket `fd`, now; errors
/// (it is already shut, the peer is gone) change nothing for the caller.
pub fn shutdown_now(fd: RawFd, how: libc::c_int) {
    // SAFETY: a plain syscall on a descriptor the caller keeps open.
    unsafe { libc::shutdown(fd, how) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_now_takes_what_is_there_says_none_when_nothing_is_and_zero_at_the_end() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let fd = server.as_raw_fd();
        let mut buf = BytesMut::with_capacity(64);
        assert_eq!(read_now(fd, &mut buf, 64), None, "nothing sent yet");

        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut got = None;
        while got.is_none() && std::time::Instant::now() < deadline {
            got = read_now(fd, &mut buf, 4);
        }
        assert_eq!(got, Some(4), "at most `limit` bytes");
        assert_eq!(&buf[..], b"GET ");
        assert_eq!(read_now(fd, &mut buf, 64), Some(14));
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n\r\n");

        drop(client);
        let mut end = None;
        while end.is_none() && std::time::Instant::now() < deadline {
            end = read_now(fd, &mut buf, 64);
        }
        assert_eq!(end, Some(0), "the peer closed");
    }

    #[test]
    fn only_empty_buffers_over_the_limit_are_released() {
        let mut big = BytesMut::with_capacity(256 * 1024);
        release_if_oversized(&mut big, 64 * 1024);
        assert_eq!(big.capacity(), 0, "an empty, oversized buffer is released");

        let mut busy = BytesMut::with_capacity(256 * 1024);
        busy.extend_from_slice(b"pipelined bytes");
        release_if_oversized(&mut busy, 64 * 1024);
        assert!(
            busy.capacity() >= 256 * 1024,
            "unread bytes keep their buffer"
        );

        let mut normal = BytesMut::with_capacity(32 * 1024);
        release_if_oversized(&mut normal, 64 * 1024);
        assert!(
            normal.capacity() >= 32 * 1024,
            "a buffer within the limit stays"
        );

        make_room(&mut big, 16 * 1024);
        assert!(big.capacity() >= 16 * 1024);
    }
}
