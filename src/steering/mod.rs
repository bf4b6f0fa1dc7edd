//! Load-aware accept steering: the kernel hands each new connection to a
//! worker in proportion to how much of its core that worker gets.
//!
//! Every worker has its own SO_REUSEPORT listener, and by default the kernel
//! spreads connections over them by a hash: evenly, whatever else runs on
//! each core. A worker whose core is crowded by other work then serves its
//! half late and slows that other work down too. A thread of its own
//! (`corelb-steer`) reads each worker's scheduler counters every
//! [`WINDOW`], turns them into weights ([`policy`]), and when the weights
//! change attaches a new classic BPF program to the listeners' group
//! ([`program`]) that draws each connection's worker by weight. The
//! workers do nothing for it: no per-connection or per-request cost, no
//! lock, no hand-off between them.
//!
//! It acts on new connections only; an open keep-alive connection stays
//! with the worker that accepted it. With one worker there is nothing to
//! steer and no thread is started. While another process listens on our
//! address too (an overlapping restart), steering stands aside and the
//! kernel spreads connections evenly ([`group`]).

pub mod group;
pub mod policy;
pub mod program;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use policy::{Policy, SchedSample};

/// How often the workers' counters are read and the weights revised
/// while the weights move.
pub const WINDOW: Duration = Duration::from_millis(100);
/// The longest window, reached by doubling while the weights stay put (an
/// idle process): an idle thread then wakes about once a second.
const LONGEST_WINDOW: Duration = Duration::from_millis(800);
/// How often the group is checked for other processes' listeners (a read
/// of `/proc/net/tcp`, which costs in proportion to the machine's
/// sockets): every second while another process shares it or just did,
/// doubling up to [`LONGEST_GROUP_CHECK`] while the group stays ours alone.
const GROUP_CHECK: Duration = Duration::from_secs(1);
/// See [`GROUP_CHECK`]: an overlap that starts while we are idle is
/// noticed within this time.
const LONGEST_GROUP_CHECK: Duration = Duration::from_secs(4);

/// The kernel thread ids of the workers, filled in as each starts.
#[derive(Debug)]
pub struct WorkerThreads {
    tids: Vec<AtomicI32>,
}

impl WorkerThreads {
    /// Room for `workers` workers, none started yet.
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            tids: (0..workers).map(|_| AtomicI32::new(0)).collect(),
        })
    }

    /// Record the calling thread as worker `worker`.
    pub fn register_current(&self, worker: usize) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.tids[worker].store(tid, Ordering::Relaxed);
    }

    fn sample(&self, worker: usize) -> Option<SchedSample> {
        let tid = self.tids[worker].load(Ordering::Relaxed);
        if tid == 0 {
            return None;
        }
        let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        SchedSample::parse(&text)
    }
}

/// Attach the program for `weights` to the SO_REUSEPORT group of
/// `listener`, replacing the one attached before.
pub fn attach(listener: &impl AsRawFd, weights: &[u32]) -> io::Result<()> {
    let mut insns = program::program(weights);
    let len = u16::try_from(insns.len()).map_err(|_| io::Error::other("too many workers"))?;
    let prog = libc::sock_fprog {
        len,
        filter: insns.as_mut_ptr(),
    };
    // The kernel copies the program during the call.
    set_socket_option(listener, libc::SO_ATTACH_REUSEPORT_CBPF, &prog)
}

/// Take our program off `listener`'s group: the kernel's even hash again.
pub fn detach(listener: &impl AsRawFd) -> io::Result<()> {
    let ignored: libc::c_int = 0;
    set_socket_option(listener, libc::SO_DETACH_REUSEPORT_BPF, &ignored)
}

/// `setsockopt(SOL_SOCKET, option, value)`.
fn set_socket_option<T>(socket: &impl AsRawFd, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points at a live `T` of the size passed, for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::from_ref(value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Our listeners' group and what is attached to it.
struct Group {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    /// Inodes of our own listeners.
    ours: Vec<u64>,
    /// The weights of our program in the kernel; `None`: none of ours.
    attached: Option<Vec<u32>>,
    /// Another process listens on our address too.
    shared: bool,
}

impl Group {
    /// Look for other processes' listeners; say so when that changes.
    /// A table we cannot read counts as shared: steering needs certainty.
    fn check(&mut self) {
        let shared = match group::has_foreign_listeners(self.addr, &self.ours) {
            Ok(shared) => {
                if shared && !self.shared {
                    tracing::info!(
                        "another process also listens on {}; accept steering stands aside and new connections are spread evenly until it leaves",
                        self.addr
                    );
                }
                shared
            }
            Err(e) => {
                if !self.shared {
                    tracing::warn!(
                        "cannot tell whether another process listens on {} ({e}); accept steering stands aside and new connections are spread evenly",
                        self.addr
                    );
                }
                true
            }
        };
        if !shared && self.shared {
            tracing::info!(
                "no other process listens on {} any more; accept steering resumes",
                self.addr
            );
        }
        self.shared = shared;
    }

    /// Put `weights` in the kernel, or nothing of ours while shared.
    fn apply(&mut self, weights: Vec<u32>) -> io::Result<()> {
        if self.shared {
            if self.attached.take().is_some() {
                detach(&self.listener)?;
            }
        } else if self.attached.as_ref() != Some(&weights) {
            attach(&self.listener, &weights)?;
            self.attached = Some(weights);
        }
        Ok(())
    }
}

/// Start steering new connections among `threads`' workers in each of
/// `groups`: one socket of a listener's SO_REUSEPORT group, its address,
/// and the inodes of our sockets in it (one per worker). Every group gets
/// the same weights: they are the workers'. An error means the kernel
/// refused the program and connections stay evenly spread.
pub fn start(
    groups: Vec<(std::net::TcpListener, SocketAddr, Vec<u64>)>,
    threads: Arc<WorkerThreads>,
) -> io::Result<()> {
    let policy = Policy::new(threads.tids.len());
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|(listener, addr, ours)| Group {
            listener,
            addr,
            ours,
            attached: None,
            shared: false,
        })
        .collect();
    for group in &mut groups {
        group.check();
        group.apply(policy.weights())?;
    }
    std::thread::Builder::new()
        .name("corelb-steer".into())
        .spawn(move || steer(groups, &threads, policy))?;
    Ok(())
}

/// Revise the weights every window and check the group now and then,
/// both less often while nothing changes (see [`LONGEST_WINDOW`],
/// [`LONGEST_GROUP_CHECK`]).
fn steer(mut groups: Vec<Group>, threads: &WorkerThreads, mut policy: Policy) {
    let mut last = Instant::now();
    let (mut window, mut check_every) = (WINDOW, GROUP_CHECK);
    let mut next_check = last + check_every;
    loop {
        std::thread::sleep(window);
        let samples: Vec<_> = (0..threads.tids.len()).map(|i| threads.sample(i)).collect();
        let now = Instant::now();
        let window_ns = u64::try_from((now - last).as_nanos()).unwrap_or(u64::MAX);
        last = now;
        let before = policy.weights();
        policy.observe(&samples, window_ns);
        let weights = policy.weights();
        window = if weights == before {
            (window * 2).min(LONGEST_WINDOW)
        } else {
            WINDOW
        };
        if now >= next_check {
            let was_shared = groups.iter().any(|g| g.shared);
            for group in &mut groups {
                group.check();
            }
            let shared = groups.iter().any(|g| g.shared);
            check_every = if shared || was_shared {
                GROUP_CHECK
            } else {
                (check_every * 2).min(LONGEST_GROUP_CHECK)
            };
            next_check = now + check_every;
        }
        for group in &mut groups {
            // Failing now (it worked at start) leaves the last split in
            // place; the next change tries again.
            let _ = group.apply(weights.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::listen::bind_listeners;
    use std::net::TcpStream;

    /// Connect `count` times to a group of listeners and count the
    /// connections each one got.
    fn spread(listeners: &[std::net::TcpListener], count: usize) -> Vec<usize> {
        let addr = listeners[0].local_addr().unwrap();
        let mut clients = Vec::with_capacity(count);
        for _ in 0..count {
            clients.push(TcpStream::connect(addr).unwrap());
        }
        // A connection may reach its accept queue just after connect()
        // returns: keep looking until all are found (or give up after 10 s).
        let mut got = vec![0; listeners.len()];
        let give_up = Instant::now() + Duration::from_secs(10);
        while got.iter().sum::<usize>() < count && Instant::now() < give_up {
            for (i, l) in listeners.iter().enumerate() {
                while l.accept().is_ok() {
                    got[i] += 1;
                }
            }
        }
        got
    }

    #[test]
    fn a_zero_weight_worker_gets_no_connections() {
        let listeners = bind_listeners("127.0.0.1:0".parse().unwrap(), 3, 1024).unwrap();
        attach(&listeners[1], &[0, 1, 0]).unwrap();
        assert_eq!(spread(&listeners, 60), vec![0, 60, 0]);
        attach(&listeners[0], &[1, 0, 0]).unwrap();
        assert_eq!(spread(&listeners, 60), vec![60, 0, 0]);
    }

    #[test]
    fn connections_follow_the_weights() {
        let listeners = bind_listeners("127.0.0.1:0".parse().unwrap(), 2, 1024).unwrap();
        attach(&listeners[0], &[3, 1]).unwrap();
        let got = spread(&listeners, 400);
        assert_eq!(got.iter().sum::<usize>(), 400);
        // Expect 300 / 100; the binomial spread is ±9, so ±50 never fails
        // by chance but fails for an even split or a reversed one.
        assert!((250..=350).contains(&got[0]), "{got:?}");
    }

    #[test]
    fn worker_threads_are_sampled_once_registered() {
        let threads = WorkerThreads::new(2);
        assert_eq!(threads.sample(0), None);
        let registered = Arc::clone(&threads);
        std::thread::spawn(move || {
            registered.register_current(1);
            // Run a little, so the counter is not zero.
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(5) {}
            let sample = registered.sample(1).expect("own schedstat is readable");
            assert!(sample.ran_ns > 0);
        })
        .join()
        .unwrap();
    }
}
