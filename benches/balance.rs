//! Cost of choosing a backend, per algorithm and pool size.
//!
//! Run: `cargo bench --bench balance` (add `-- --quick` for a fast pass).
//!
//! - `pick/<algorithm>/<backends>`: one thread, `pick` alone.
//! - `pick_count/<algorithm>/<backends>`: one thread, pick + in-flight
//!   guard taken and dropped (the shared-counter writes every proxied
//!   request makes): the baseline for the next one.
//! - `pick_count_2_threads/<algorithm>/<backends>`: the same on two threads
//!   at once, each with its own balancer as two workers have; time per
//!   request on one thread while the other runs. The difference from
//!   `pick_count` is what sharing the backends' counter cache lines costs.
//! - `crossover/<algorithm>/<backends>`: least-connections against
//!   power-of-two on small pools, to find where the O(n) scan loses.
//! - `consistent_hash_build/<backends>`: building a worker's Maglev table,
//!   paid once per worker per reload.
//! - `request_hash/<key>`: extracting and hashing a consistent-hash key.
//!
//! Pools are realistic rather than best-case: weights cycle 1,2,3 (so
//! round-robin takes its smooth path and weighted draws reject sometimes),
//! a few requests are in flight and latencies are sampled.
//!
//! Times are *thread CPU time* (`CLOCK_THREAD_CPUTIME_ID`), not wall time,
//! so that builds and tests running on a shared machine do not inflate
//! them by descheduling the benchmark; on an idle machine the two agree.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use corelb::balance::{self, Algorithm, Balancer};
use corelb::config::HashKey;
use corelb::http::{parse_request, MAX_HEADERS};
use corelb::state::backend::{Backend, InflightGuard};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const POOL_SIZES: [usize; 4] = [2, 16, 256, 4096];

/// Request hashes to cycle through, so consistent hashing reads table
/// slots all over, as real traffic would.
const HASHES: usize = 4096;

/// CPU time consumed by the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the timespec it is given, which
    // lives on this stack frame for the whole call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is unavailable");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// CPU time `work` takes on this thread.
fn cpu_time_of(work: impl FnOnce()) -> Duration {
    let start = thread_cpu_time();
    work();
    thread_cpu_time().saturating_sub(start)
}

/// A pool of `n` backends with mixed weights, some load and some latency.
/// The guards keep the load in place while the pool is in use.
fn pool(n: usize) -> (Vec<Arc<Backend>>, Vec<InflightGuard>) {
    let backends: Vec<Arc<Backend>> = (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8080));
            let backend = Arc::new(Backend::new(addr, format!("{addr}"), 1 + (i % 3) as u32));
            backend.observe_latency(1_000_000 + (i as u64 % 7) * 100_000);
            backend
        })
        .collect();
    let load = backends
        .iter()
        .enumerate()
        .flat_map(|(i, b)| (0..i % 4).map(move |_| b.start_request()))
        .collect();
    (backends, load)
}

fn hashes() -> Vec<u64> {
    // Any well-spread values will do; SplitMix64's increment is one.
    (0..HASHES as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect()
}

/// `iters` picks, results discarded.
fn pick_loop(balancer: &dyn Balancer, backends: &[Arc<Backend>], hashes: &[u64], iters: u64) {
    for i in 0..iters {
        let hash = hashes[i as usize % HASHES];
        black_box(balancer.pick(black_box(backends), hash));
    }
}

/// `iters` requests as a worker makes them: pick, count in flight, finish.
fn request_loop(balancer: &dyn Balancer, backends: &[Arc<Backend>], hashes: &[u64], iters: u64) {
    for i in 0..iters {
        let hash = hashes[i as usize % HASHES];
        if let Some(chosen) = balancer.pick(black_box(backends), hash) {
            let guard = backends[chosen].start_request();
            black_box(&guard);
        }
    }
}

fn single_thread(c: &mut Criterion) {
    let hashes = hashes();
    for (group_name, work) in [
        (
            "pick",
            pick_loop as fn(&dyn Balancer, &[Arc<Backend>], &[u64], u64),
        ),
        ("pick_count", request_loop),
    ] {
        for &algorithm in Algorithm::ALL {
            let mut group = c.benchmark_group(format!("{group_name}/{algorithm}"));
            for n in POOL_SIZES {
                let (backends, _load) = pool(n);
                let balancer = balance::build(algorithm, &backends, 1);
                group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                    b.iter_custom(|iters| {
                        cpu_time_of(|| work(balancer.as_ref(), &backends, &hashes, iters))
                    })
                });
            }
            group.finish();
        }
    }
}

/// Small pools, where O(n) least-connections and O(1) power-of-two cost
/// about the same: where does the scan start to lose?
fn crossover(c: &mut Criterion) {
    let hashes = hashes();
    for algorithm in [Algorithm::LeastConnections, Algorithm::PowerOfTwo] {
        let mut group = c.benchmark_group(format!("crossover/{algorithm}"));
        for n in [3, 4, 6, 8, 12] {
            let (backends, _load) = pool(n);
            let balancer = balance::build(algorithm, &backends, 1);
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter_custom(|iters| {
                    cpu_time_of(|| pick_loop(balancer.as_ref(), &backends, &hashes, iters))
                })
            });
        }
        group.finish();
    }
}

/// One of two long-lived threads for the two-thread benchmark: builds its
/// own balancer once, then runs `request_loop` for each batch size it is
/// sent and answers with the CPU time it took, until the sender hangs up.
fn paired_worker(
    algorithm: Algorithm,
    seed: u64,
    backends: &[Arc<Backend>],
    hashes: &[u64],
    batches: mpsc::Receiver<u64>,
    start_together: &Barrier,
    results: mpsc::Sender<Duration>,
) {
    let balancer = balance::build(algorithm, backends, seed);
    while let Ok(iters) = batches.recv() {
        start_together.wait();
        let took = cpu_time_of(|| request_loop(balancer.as_ref(), backends, hashes, iters));
        if results.send(took).is_err() {
            return;
        }
    }
}

fn two_threads(c: &mut Criterion) {
    let hashes = hashes();
    for &algorithm in Algorithm::ALL {
        let mut group = c.benchmark_group(format!("pick_count_2_threads/{algorithm}"));
        for n in POOL_SIZES {
            let (backends, _load) = pool(n);
            let start_together = Barrier::new(2);
            let (results_tx, results) = mpsc::channel();
            std::thread::scope(|scope| {
                let batch_senders: Vec<mpsc::Sender<u64>> = (0..2u64)
                    .map(|seed| {
                        let (tx, rx) = mpsc::channel();
                        let results_tx = results_tx.clone();
                        let (backends, hashes, start) = (&backends, &hashes, &start_together);
                        scope.spawn(move || {
                            paired_worker(algorithm, seed, backends, hashes, rx, start, results_tx)
                        });
                        tx
                    })
                    .collect();
                group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                    b.iter_custom(|iters| {
                        for tx in &batch_senders {
                            tx.send(iters).expect("worker thread alive");
                        }
                        // The slower of the two is the time for `iters`.
                        (0..2)
                            .map(|_| results.recv().expect("worker thread alive"))
                            .max()
                            .unwrap_or_default()
                    })
                });
                // Hanging up ends both workers; the scope joins them.
                drop(batch_senders);
            });
        }
        group.finish();
    }
}

fn maglev_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("consistent_hash_build");
    group.sample_size(10);
    for n in POOL_SIZES {
        let (backends, _load) = pool(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                cpu_time_of(|| {
                    for _ in 0..iters {
                        black_box(balance::build(
                            Algorithm::ConsistentHash,
                            black_box(&backends),
                            0,
                        ));
                    }
                })
            })
        });
    }
    group.finish();
}

fn key_hashing(c: &mut Criterion) {
    let raw = b"GET /api/v1/users/12345?fields=name HTTP/1.1\r\nHost: api.example.com\r\n\
User-Agent: curl/8.5.0\r\nAccept: */*\r\nX-User: 7d3f9a1c\r\n\
Cookie: theme=dark; lang=en; session=a8f5f167f44f4964e6c998dee827110c; tz=UTC\r\n\r\n";
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(Some(req)) = parse_request(raw, &mut headers) else {
        panic!("the bench request must parse");
    };
    let client_ip = IpAddr::from([203, 0, 113, 7]);
    let mut group = c.benchmark_group("request_hash");
    for (label, key) in [
        ("client-ip", HashKey::ClientIp),
        ("path", HashKey::Path),
        ("header", HashKey::Header("x-user".into())),
        ("cookie", HashKey::Cookie("session".into())),
    ] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                cpu_time_of(|| {
                    for _ in 0..iters {
                        black_box(balance::request_hash(
                            black_box(&key),
                            Algorithm::ConsistentHash,
                            client_ip,
                            black_box(&req),
                        ));
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    single_thread,
    crossover,
    two_threads,
    maglev_build,
    key_hashing
);
criterion_main!(benches);
