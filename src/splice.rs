//! Moving a large response body from the backend's socket to the client's
//! without it entering user space: `splice(2)` from the one into a pipe,
//! and from the pipe into the other.
//!
//! Used only where no byte of the body needs looking at: a `Content-Length`
//! body too large to gather (`proxy/relay.rs`), plain TCP on both sides.
//! On loopback and on real NICs alike, the pages the backend's segments
//! arrived in are handed to the client's socket by reference; a read and
//! a write through a buffer copy each byte twice.
//!
//! The splices are plain non-blocking system calls, as HAProxy makes them;
//! a side that is not ready is waited for with monoio's readiness wait (an
//! io_uring poll, or epoll). io_uring's own `SPLICE` operation is not used:
//! the kernel runs every one of them on an io-wq worker thread, which
//! blocks in it, so each would cost a thread hand-off.
//!
//! Pipes are kept per worker ([`Pipes`]) and reused: one is taken for a
//! body and given back only if it was left empty.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use monoio::net::TcpStream;

use crate::deadline::{Deadlines, Direction};

/// What a pipe is asked to hold: fewer, larger splices. The kernel may
/// refuse (an unprivileged process past `fs.pipe-max-size` or its pipe
/// page quota); the pipe then keeps its default 64 KiB.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// Empty pipes a worker keeps for the next body (two descriptors each).
const KEPT_PIPES: usize = 8;

/// A pipe: its read end and its write end.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is two writable descriptors' room.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 just opened both; they are ours alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: a plain fcntl on a descriptor we own; failure is fine.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        Ok(Self { read, write })
    }
}

/// A worker's spare pipes.
#[derive(Default)]
pub struct Pipes {
    free: RefCell<Vec<Pipe>>,
}

impl Pipes {
    /// A pipe, empty: a spare one, or a new one.
    fn take(&self) -> io::Result<Pipe> {
        match self.free.borrow_mut().pop() {
            Some(pipe) => Ok(pipe),
            None => Pipe::new(),
        }
    }

    /// Keep `pipe` for the next body (it must be empty), unless enough are
    /// kept already.
    fn give_back(&self, pipe: Pipe) {
        let mut free = self.free.borrow_mut();
        if free.len() < KEPT_PIPES {
            free.push(pipe);
        }
    }
}

/// Why a spliced body stopped short.
#[derive(Debug)]
pub enum SpliceError {
    /// The backend closed before the whole body came.
    SourceClosed,
    /// The backend sent nothing for its timeout.
    SourceTimeout,
    /// Reading from the backend failed.
    Source(io::Error),
    /// The client's side failed, or took no bytes for its timeout.
    Destination,
    /// No pipe could be made (descriptors): nothing was moved, so the
    /// caller may still relay the body through its buffers.
    NoPipe(io::Error),
}

/// Make `fd` non-blocking: a splice from or to a socket waits unless the
/// socket's own flag says not to (`SPLICE_F_NONBLOCK` only concerns the
/// pipe). monoio leaves a socket it made for io_uring blocking; its
/// operations do not mind the flag.
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor the caller keeps open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0
        && unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One non-blocking splice of up to `len` bytes from `from` to `to`.
fn splice_now(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: a plain syscall on descriptors the caller keeps open; no
    // offsets (sockets and pipes have none).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Move exactly `len` bytes from `from` to `to` through a pipe of
/// `pipes`, waiting at most `read_timeout` for the backend and
/// `write_timeout` for the client at a time. Returns the bytes that
/// reached the client, with the error if they are not all of them.
pub async fn splice_body(
    deadlines: &Deadlines,
    pipes: &Pipes,
    from: &TcpStream,
    to: &TcpStream,
    len: u64,
    read_timeout: Duration,
    write_timeout: Duration,
) -> (u64, Result<(), SpliceError>) {
    let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
    let pipe = match set_nonblocking(src)
        .and_then(|()| set_nonblocking(dst))
        .and_then(|()| pipes.take())
    {
        Ok(pipe) => pipe,
        Err(e) => return (0, Err(SpliceError::NoPipe(e))),
    };
    let (pipe_in, pipe_out) = (pipe.write.as_raw_fd(), pipe.read.as_raw_fd());
    let mut to_read = len;
    let mut in_pipe = 0usize;
    let mut sent = 0u64;
    let result = loop {
        if to_read > 0 {
            let want = usize::try_from(to_read).unwrap_or(usize::MAX);
            match splice_now(src, pipe_in, want) {
                Ok(0) => break Err(SpliceError::SourceClosed),
                Ok(n) => {
                    to_read -= n as u64;
                    in_pipe += n;
                }
                // The pipe is full (the client is behind): send first.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && in_pipe > 0 => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let wait = deadlines.arm(src, Direction::Read, read_timeout);
                    let ready = from.readable(false).await;
                    if wait.expired() {
                        break Err(SpliceError::SourceTimeout);
                    }
                    if let Err(e) = ready {
                        break Err(SpliceError::Source(e));
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(SpliceError::Source(e)),
            }
        }
        if in_pipe > 0 {
            match splice_now(pipe_out, dst, in_pipe) {
                Ok(0) => break Err(SpliceError::Destination),
                Ok(n) => {
                    in_pipe -= n;
                    sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let wait = deadlines.arm(dst, Direction::Write, write_timeout);
                    let ready = to.writable(false).await;
                    if wait.expired() || ready.is_err() {
                        break Err(SpliceError::Destination);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break Err(SpliceError::Destination),
            }
        }
        if to_read == 0 && in_pipe == 0 {
            break Ok(());
        }
    };
    // A pipe with bytes left in it would hand them to the next body.
    if in_pipe == 0 {
        pipes.give_back(pipe);
    }
    (sent, result)
}
