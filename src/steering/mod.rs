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
//! steer and no thread is started.

pub mod policy;
pub mod program;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use policy::{Policy, SchedSample};

/// How often the workers' counters are read and the weights revised.
pub const WINDOW: Duration = Duration::from_millis(100);

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
    // SAFETY: `prog` points at `insns`, alive for the call; the kernel
    // copies the program.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&prog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Start steering new connections among `threads`' workers, whose
/// listeners share `listener`'s SO_REUSEPORT group. An error means the
/// kernel refused the program and connections stay evenly spread.
pub fn start(listener: std::net::TcpListener, threads: Arc<WorkerThreads>) -> io::Result<()> {
    let policy = Policy::new(threads.tids.len());
    let attached = policy.weights();
    attach(&listener, &attached)?;
    std::thread::Builder::new()
        .name("corelb-steer".into())
        .spawn(move || steer(&listener, &threads, policy, attached))?;
    Ok(())
}

/// Revise the weights every window; `attached` are the ones in the kernel.
fn steer(
    listener: &std::net::TcpListener,
    threads: &WorkerThreads,
    mut policy: Policy,
    mut attached: Vec<u32>,
) {
    let mut last = Instant::now();
    loop {
        std::thread::sleep(WINDOW);
        let samples: Vec<_> = (0..threads.tids.len()).map(|i| threads.sample(i)).collect();
        let now = Instant::now();
        let window_ns = u64::try_from((now - last).as_nanos()).unwrap_or(u64::MAX);
        last = now;
        policy.observe(&samples, window_ns);
        let weights = policy.weights();
        // Failing now (it worked at start) leaves the last split in place.
        if weights != attached && attach(listener, &weights).is_ok() {
            attached = weights;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::bind_listeners;
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
