//! Coarse timeouts for socket waits: one sweep per tick instead of one timer
//! per read or write.
//!
//! A monoio timeout around every read and write reads the clock, inserts
//! into and removes from the timer wheel, and adds a future to every poll.
//! At four waits per proxied request that was a quarter of corelb's
//! user-space CPU (0.7 of 2.9 µs per request). Here, a wait only records its
//! socket and deadline in a per-worker table, computed from a clock the
//! sweeper refreshes every [`TICK`]. The sweeper shuts down the socket of a
//! wait past its deadline — the read side for a read, the write side for a
//! write — which ends the pending operation at once (a read sees end of
//! file, a write `EPIPE`), and the waiter reports a timeout. The other
//! direction stays usable: after an upstream write timeout, an answer the
//! backend already sent (413, ...) can still be read and relayed. What the
//! shutdown sends: none for a read; for a write, a FIN queued behind the
//! unsent data, which the peer sees only if it drains everything before we
//! close (a client connection cut mid-response is closed with RST, which
//! discards both). Once both sides are shut, data arriving makes the kernel
//! reset the connection: nothing is sent to a client after its read timed
//! out.
//!
//! A timeout fires between `timeout` and `timeout + 2 × TICK` after the wait
//! began (later only if the event loop itself stalls), so timeouts under
//! about 100 ms are not honoured precisely. Waits that are not on a socket
//! (connecting) keep monoio timers. The sweep walks every pending wait, and
//! each idle keep-alive client has one: 10 000 waits take 11 µs a sweep,
//! 0.02 % of a core at 20 sweeps a second; arming and dropping a wait takes
//! 6 ns (`cargo bench --bench deadline`).

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use slab::Slab;

/// How often the sweeper looks for expired waits.
pub const TICK: Duration = Duration::from_millis(50);

/// Which side of the socket a wait is on, and so which side to shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

struct Wait {
    fd: RawFd,
    direction: Direction,
    deadline: Instant,
    expired: bool,
    /// A keep-alive connection waiting for its next request: cut short
    /// by a drain.
    idle_since: Option<Instant>,
}

/// One worker's pending socket waits and its coarse clock.
pub struct Deadlines {
    /// The time at the last sweep (never ahead of the real time).
    now: Cell<Instant>,
    waits: RefCell<Slab<Wait>>,
    /// Set by a drain: the longest an idle wait may last from now on.
    idle_cap: Cell<Option<Duration>>,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self::new()
    }
}

impl Deadlines {
    /// An empty table; its clock starts now.
    pub fn new() -> Self {
        Self {
            now: Cell::new(Instant::now()),
            waits: RefCell::new(Slab::new()),
            idle_cap: Cell::new(None),
        }
    }

    /// The time at the last sweep: at most a tick (plus any delay of the
    /// event loop) behind the real time, and free to read.
    pub fn now(&self) -> Instant {
        self.now.get()
    }

    /// Register a wait on `fd` that must end within `timeout`. The wait is
    /// over when the returned guard is dropped; ask it whether it expired.
    pub fn arm(&self, fd: RawFd, direction: Direction, timeout: Duration) -> Armed<'_> {
        self.insert(fd, direction, timeout, None)
    }

    /// [`Deadlines::arm`] for a kept-alive connection waiting for its next
    /// request (a read): a drain ends it early ([`Deadlines::start_drain`]).
    pub fn arm_idle(&self, fd: RawFd, timeout: Duration) -> Armed<'_> {
        let timeout = match self.idle_cap.get() {
            Some(cap) => timeout.min(cap),
            None => timeout,
        };
        self.insert(fd, Direction::Read, timeout, Some(self.now.get()))
    }

    fn insert(
        &self,
        fd: RawFd,
        direction: Direction,
        timeout: Duration,
        idle_since: Option<Instant>,
    ) -> Armed<'_> {
        // `now` may be up to a tick old: add a tick so no wait is cut short.
        let deadline = self.now.get() + timeout + TICK;
        let key = self.waits.borrow_mut().insert(Wait {
            fd,
            direction,
            deadline,
            expired: false,
            idle_since,
        });
        Armed { table: self, key }
    }

    /// A drain began: every idle wait now ends once it has lasted `grace`
    /// (at once if it already has), and so does every idle wait armed
    /// from now on.
    pub fn start_drain(&self, grace: Duration) {
        self.idle_cap.set(Some(grace));
        for (_, wait) in self.waits.borrow_mut().iter_mut() {
            if let Some(since) = wait.idle_since {
                wait.deadline = wait.deadline.min(since + grace);
            }
        }
    }

    /// Advance the clock to `now` and expire every wait whose deadline has
    /// passed, shutting down its socket's side. Returns how many expired.
    pub fn sweep(&self, now: Instant) -> usize {
        self.now.set(now);
        let mut expired = 0;
        for (_, wait) in self.waits.borrow_mut().iter_mut() {
            if wait.expired || wait.deadline > now {
                continue;
            }
            wait.expired = true;
            expired += 1;
            let how = match wait.direction {
                Direction::Read => libc::SHUT_RD,
                Direction::Write => libc::SHUT_WR,
            };
            // SAFETY: a plain syscall on a descriptor that stays open while
            // its wait is registered (the guard is dropped before the socket).
            unsafe { libc::shutdown(wait.fd, how) };
        }
        expired
    }

    /// Waits currently registered.
    pub fn pending(&self) -> usize {
        self.waits.borrow().len()
    }
}

/// A registered wait; dropping it unregisters it.
pub struct Armed<'a> {
    table: &'a Deadlines,
    key: usize,
}

impl Armed<'_> {
    /// Did the sweeper end this wait (its socket side is now shut down)?
    pub fn expired(&self) -> bool {
        self.table.waits.borrow()[self.key].expired
    }

    /// Start this wait's `timeout` again from now, unless it already
    /// expired: for a wait that lasts as long as something keeps happening
    /// (a tunnel's idle time), renewed on every event, without a timer.
    pub fn renew(&self, timeout: Duration) {
        let deadline = self.table.now.get() + timeout + TICK;
        let mut waits = self.table.waits.borrow_mut();
        let wait = &mut waits[self.key];
        if !wait.expired {
            wait.deadline = deadline;
        }
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.table.waits.borrow_mut().remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        (a, b)
    }

    #[test]
    fn a_wait_expires_only_after_its_timeout_and_a_tick() {
        let table = Deadlines::new();
        let start = table.now();
        let (a, _b) = socket_pair();
        let wait = table.arm(a.as_raw_fd(), Direction::Read, Duration::from_secs(1));
        assert_eq!(table.sweep(start + Duration::from_secs(1)), 0);
        assert!(!wait.expired());
        assert_eq!(table.sweep(start + Duration::from_secs(1) + TICK), 1);
        assert!(wait.expired());
        assert_eq!(
            table.sweep(start + Duration::from_secs(5)),
            0,
            "expires once"
        );
    }

    #[test]
    fn a_drain_ends_idle_waits_after_the_grace_and_leaves_others() {
        let table = Deadlines::new();
        let start = table.now();
        let (a, _b) = socket_pair();
        let (c, _d) = socket_pair();
        let idle = table.arm_idle(a.as_raw_fd(), Duration::from_secs(60));
        let busy = table.arm(c.as_raw_fd(), Direction::Read, Duration::from_secs(60));
        table.start_drain(Duration::from_secs(1));
        assert_eq!(table.sweep(start + Duration::from_millis(500)), 0);
        assert_eq!(table.sweep(start + Duration::from_secs(1)), 1);
        assert!(idle.expired());
        assert!(!busy.expired());
        // Armed during the drain: capped too.
        let later = table.arm_idle(c.as_raw_fd(), Duration::from_secs(60));
        assert_eq!(table.sweep(table.now() + Duration::from_secs(1) + TICK), 1);
        assert!(later.expired());
    }

    #[test]
    fn a_renewed_wait_expires_a_timeout_after_its_last_renewal() {
        let table = Deadlines::new();
        let start = table.now();
        let (a, _b) = socket_pair();
        let wait = table.arm(a.as_raw_fd(), Direction::Read, Duration::from_secs(1));
        table.sweep(start + Duration::from_millis(900));
        wait.renew(Duration::from_secs(1));
        assert_eq!(table.sweep(start + Duration::from_millis(1500)), 0);
        assert_eq!(table.sweep(start + Duration::from_millis(1950)), 1);
        assert!(wait.expired());
        wait.renew(Duration::from_secs(60));
        assert!(wait.expired(), "an expired wait stays expired");
    }

    #[test]
    fn dropping_the_guard_unregisters_the_wait() {
        let table = Deadlines::new();
        let (a, _b) = socket_pair();
        let wait = table.arm(a.as_raw_fd(), Direction::Read, Duration::ZERO);
        assert_eq!(table.pending(), 1);
        drop(wait);
        assert_eq!(table.pending(), 0);
        assert_eq!(table.sweep(table.now() + Duration::from_secs(60)), 0);
    }

    #[test]
    fn an_expired_read_ends_the_read_but_leaves_writing_open() {
        let table = Deadlines::new();
        let (mut a, mut b) = socket_pair();
        let wait = table.arm(a.as_raw_fd(), Direction::Read, Duration::ZERO);
        table.sweep(table.now() + TICK);
        assert!(wait.expired());
        let mut buf = [0u8; 8];
        assert_eq!(
            a.read(&mut buf).unwrap(),
            0,
            "a read after expiry sees end of file"
        );
        a.write_all(b"408").unwrap();
        b.read_exact(&mut buf[..3]).unwrap();
        assert_eq!(&buf[..3], b"408");
    }

    #[test]
    fn an_expired_write_fails_the_next_write() {
        let table = Deadlines::new();
        let (mut a, _b) = socket_pair();
        let wait = table.arm(a.as_raw_fd(), Direction::Write, Duration::ZERO);
        table.sweep(table.now() + TICK);
        assert!(wait.expired());
        let err = a.write_all(b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
