//! `send` and `recv` as plain system calls.
//!
//! glibc's `send` and `recv` are thread-cancellation points: in a process
//! with more than one thread, each call switches asynchronous cancellation
//! on and off around the system call. corelb never cancels threads, and on
//! the request path those two calls were 4 % of its user-space time
//! (`perf record -e cpu-clock:u`, 13 B bodies). `syscall(2)` is not a
//! cancellation point and goes straight to the kernel.

use std::os::fd::RawFd;

/// `send(fd, bytes, flags)`: bytes sent, or -1 with `errno` set.
pub fn send(fd: RawFd, bytes: &[u8], flags: libc::c_int) -> isize {
    // SAFETY: `bytes` is a live slice for the duration of the call; a null
    // address of length 0 makes sendto a plain send.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            bytes.as_ptr(),
            bytes.len(),
            flags,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    n as isize
}

/// `sendmsg(fd, slices, flags)`: the slices sent in one call, as one
/// write (rustls's queued TLS records: one segment train, not one system
/// call per record); bytes sent, or -1 with `errno` set.
pub fn send_vectored(fd: RawFd, slices: &[std::io::IoSlice<'_>], flags: libc::c_int) -> isize {
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` (std guarantees it
    // on Unix); the slices outlive the call; no address, no control data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = slices.len().min(libc::UIO_MAXIOV as usize) as _;
    let n = unsafe { libc::syscall(libc::SYS_sendmsg, fd, &msg as *const libc::msghdr, flags) };
    n as isize
}

/// `recv(fd, buf, flags)`: bytes received (0 at end of stream), or -1 with
/// `errno` set.
pub fn recv(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> isize {
    // SAFETY: initialized bytes may be seen as maybe-uninitialized ones;
    // the kernel only ever writes bytes into them.
    let buf = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    recv_uninit(fd, buf, flags)
}

/// `recv(fd, buf, flags)` into memory not yet initialized (a buffer's
/// spare capacity): bytes received (0 at end of stream), or -1 with
/// `errno` set. The kernel only writes, never reads, what it is given.
pub fn recv_uninit(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>], flags: libc::c_int) -> isize {
    // SAFETY: `buf` is live and writable for the duration of the call;
    // the kernel writes at most `buf.len()` bytes into it and reads none.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            flags,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    n as isize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn send_and_recv_move_bytes_over_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();

        assert_eq!(send(client.as_raw_fd(), b"hello", libc::MSG_NOSIGNAL), 5);
        let mut got = [0u8; 5];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        server.write_all(b"xy").unwrap();
        let mut peeked = [0u8; 1];
        assert_eq!(recv(client.as_raw_fd(), &mut peeked, libc::MSG_PEEK), 1);
        assert_eq!(&peeked, b"x");
        let mut rest = [0u8; 2];
        client.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"xy");
    }

    #[test]
    fn send_vectored_sends_every_slice_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let slices = [
            std::io::IoSlice::new(b"head "),
            std::io::IoSlice::new(b""),
            std::io::IoSlice::new(b"body"),
        ];
        let sent = send_vectored(client.as_raw_fd(), &slices, libc::MSG_NOSIGNAL);
        assert_eq!(sent, 9);
        let mut got = [0u8; 9];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"head body");
    }

    #[test]
    fn errors_come_back_as_minus_one_with_errno() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(recv(client.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT), -1);
        assert_eq!(
            std::io::Error::last_os_error().kind(),
            std::io::ErrorKind::WouldBlock
        );
    }
}
