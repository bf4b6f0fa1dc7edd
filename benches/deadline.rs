//! The cost of the coarse-timeout sweep (src/deadline.rs): every 50 ms each
//! worker walks all its pending socket waits, and every idle keep-alive
//! client has one. Also the cost of arming and dropping one wait, which
//! every read and write pays.
//!
//! `cargo bench --bench deadline`

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use corelb::deadline::{Deadlines, Direction};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn sweep(c: &mut Criterion) {
    // One real socket stands behind every wait: none expires in the
    // measured sweeps, so nothing is shut down.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let fd = socket.as_raw_fd();
    let mut group = c.benchmark_group("deadline_sweep");
    for waits in [100usize, 10_000, 100_000] {
        let table = Deadlines::new();
        let armed: Vec<_> = (0..waits)
            .map(|_| table.arm(fd, Direction::Read, Duration::from_secs(60)))
            .collect();
        let now = table.now();
        group.bench_with_input(BenchmarkId::from_parameter(waits), &waits, |b, _| {
            b.iter(|| black_box(table.sweep(black_box(now))))
        });
        drop(armed);
    }
    group.finish();

    let table = Deadlines::new();
    c.bench_function("deadline_arm_and_drop", |b| {
        b.iter(|| {
            let wait = table.arm(black_box(fd), Direction::Read, Duration::from_secs(60));
            black_box(wait.expired())
        })
    });
}

criterion_group!(benches, sweep);
criterion_main!(benches);
