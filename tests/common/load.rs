//! Steady load for the tests that count failures under load (resilience,
//! reload, takeover): keep-alive clients sending one fixed
//! request in a loop, counting every answer by status and every failure
//! (a connection error, a timeout, a response that could not be read).
//!
//! A client reconnects when an answer says `Connection: close` or after a
//! failure, so one bad exchange never stops the load. Every wait is
//! bounded by [`SAFETY`]; the clients stop when the `Load` finishes or is
//! dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{Client, Conn, SAFETY};

/// Failure descriptions kept for the message of a failed assertion.
const KEPT_FAILURES: usize = 20;

/// What the clients saw.
#[derive(Default)]
pub struct Tally {
    /// Responses by status.
    by_status: Mutex<BTreeMap<u16, u64>>,
    /// Exchanges that got no response.
    failures: AtomicU64,
    first_failures: Mutex<Vec<String>>,
}

/// A snapshot of a [`Tally`], or the difference of two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub answered: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub failures: u64,
}

impl Counts {
    /// Responses with `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// Responses with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.by_status.range(500..600).map(|(_, n)| n).sum()
    }

    /// Exchanges that did not end in `200` (other statuses and failures).
    pub fn not_ok(&self) -> u64 {
        self.answered - self.status(200) + self.failures
    }

    /// What happened since `earlier`.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let by_status = self
            .by_status
            .iter()
            .map(|(s, n)| (*s, n - earlier.status(*s)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Counts {
            answered: self.answered - earlier.answered,
            by_status,
            failures: self.failures - earlier.failures,
        }
    }
}

/// Clients looping over one request until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `clients` keep-alive clients sending `GET /` to `addr`.
    pub fn start(addr: SocketAddr, clients: usize) -> Load {
        Load::start_sending(addr, clients, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    }

    /// `clients` keep-alive clients sending `request` (one whole request,
    /// not to a HEAD) to `addr`.
    pub fn start_sending(addr: SocketAddr, clients: usize, request: &'static [u8]) -> Load {
        Load::start_clients(addr, clients, request, false)
    }

    /// `clients` keep-alive clients sending `HEAD /` to `addr` (answers
    /// are read to their head: a HEAD's answer has no body).
    pub fn start_head(addr: SocketAddr, clients: usize) -> Load {
        Load::start_clients(
            addr,
            clients,
            b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n",
            true,
        )
    }

    fn start_clients(addr: SocketAddr, clients: usize, request: &'static [u8], head: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = (0..clients)
            .map(|_| {
                let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
                thread::spawn(move || client_loop(addr, request, head, &stop, &tally))
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    /// Everything counted so far.
    pub fn counts(&self) -> Counts {
        let by_status = self.tally.by_status.lock().unwrap().clone();
        Counts {
            answered: by_status.values().sum(),
            by_status,
            failures: self.tally.failures.load(Ordering::SeqCst),
        }
    }

    /// Responses received so far.
    pub fn answered(&self) -> u64 {
        self.tally.by_status.lock().unwrap().values().sum()
    }

    /// The first few failures, described.
    pub fn first_failures(&self) -> Vec<String> {
        self.tally.first_failures.lock().unwrap().clone()
    }

    /// Wait (at most a minute) until `n` more responses arrived.
    pub fn wait_more(&self, n: u64) {
        let target = self.answered() + n;
        let give_up = Instant::now() + Duration::from_secs(60);
        while self.answered() < target && Instant::now() < give_up {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            self.answered() >= target,
            "load stalled at {} answers ({:?}; failures: {:?})",
            self.answered(),
            self.counts(),
            self.first_failures()
        );
    }

    /// Stop the clients (each finishes its exchange); the final counts.
    pub fn finish(mut self) -> Counts {
        self.stop_threads();
        self.counts()
    }

    /// [`Load::finish`], with the first few failures described, for the
    /// message of an assertion on the counts.
    pub fn finish_with_failures(mut self) -> (Counts, Vec<String>) {
        self.stop_threads();
        (self.counts(), self.first_failures())
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn client_loop(addr: SocketAddr, request: &[u8], head: bool, stop: &AtomicBool, tally: &Tally) {
    let fail = |what: String| {
        tally.failures.fetch_add(1, Ordering::SeqCst);
        let mut kept = tally.first_failures.lock().unwrap();
        if kept.len() < KEPT_FAILURES {
            kept.push(what);
        }
    };
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::Relaxed) {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect_timeout(&addr, SAFETY) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(SAFETY)).unwrap();
                    stream.set_write_timeout(Some(SAFETY)).unwrap();
                    client.insert(Client {
                        conn: Conn::new(stream),
                    })
                }
                Err(e) => {
                    fail(format!("connect: {e}"));
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match c
            .conn
            .stream
            .write_all(request)
            .and_then(|_| c.try_read_response(head))
        {
            Ok(r) => {
                *tally.by_status.lock().unwrap().entry(r.status).or_default() += 1;
                if r.says_close() || r.close_delimited {
                    client = None;
                }
            }
            Err(e) => {
                fail(e.to_string());
                client = None;
            }
        }
    }
}
