//! Accept steering with real processes: with two workers, every new
//! connection still reaches a worker that serves it; a corelb that joins a
//! port another process already listens on stands aside (it could not tell
//! which listener is whose), and takes over once the other one is gone.

#[macro_use]
mod common;

use common::*;

#[test]
fn every_new_connection_is_served_with_two_steered_workers() {
    let backend = Backend::echo_name("b");
    let proxy = Proxy::start(&["--threads", "2", "--backend", &backend.addr().to_string()]);
    // Steering revises its split every 250 ms; connections opened across
    // several revisions must all land on a listener that is accepting.
    for i in 0..200 {
        let mut client = proxy.client();
        let response = client.get(&format!("/{i}"));
        assert_eq!(response.status, 200, "connection {i}");
        if i % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    assert_eq!(backend.request_count(), 200);
    assert!(!proxy.log().contains("steering is off"), "{}", proxy.log());
}

/// A corelb with 2 workers, then one with `second_threads` joining its port
/// on purpose (`--takeover`), both in front of the returned backend.
fn two_on_one_port(second_threads: &str) -> (Backend, Proxy, Proxy) {
    let backend = Backend::echo_name("b");
    let backend_addr = backend.addr().to_string();
    let first = Proxy::start(&["--threads", "2", "--backend", &backend_addr]);
    let port = first.addr().to_string();
    let second = Proxy::start(&[
        "--takeover",
        "--threads",
        second_threads,
        "--listen",
        &port,
        "--backend",
        &backend_addr,
    ]);
    (backend, first, second)
}

#[test]
fn joining_another_process_on_the_same_port_sets_steering_aside() {
    let (backend, _first, second) = two_on_one_port("2");
    assert!(
        second.log().contains("another process also listens on"),
        "{}",
        second.log()
    );
    // Both still serve: the kernel spreads connections over all four.
    for i in 0..40 {
        assert_eq!(second.client().get(&format!("/{i}")).status, 200);
    }
    assert_eq!(backend.request_count(), 40);
}

/// Nanoseconds each worker thread (`corelb-wN`) of process `pid` has run.
fn worker_run_times(pid: u32) -> Vec<(String, u64)> {
    let mut times = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = name.trim().to_owned();
        if !name.starts_with("corelb-w") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap();
        let ran = stat.split_whitespace().next().unwrap().parse().unwrap();
        times.push((name, ran));
    }
    times.sort();
    times
}

#[test]
fn after_the_other_process_leaves_every_worker_gets_connections() {
    // A 2-worker corelb steers its group; a 4-worker one joins the port,
    // then the first exits. The first one's program must not stay behind
    // in the kernel, sending every connection to two of the four workers.
    let (_backend, first, second) = two_on_one_port("4");
    drop(first);
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !second.log().contains("accept steering resumes") && std::time::Instant::now() < give_up {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        second.log().contains("accept steering resumes"),
        "{}",
        second.log()
    );

    let before = worker_run_times(second.pid());
    for i in 0..400 {
        assert_eq!(second.client().get(&format!("/{i}")).status, 200);
    }
    let after = worker_run_times(second.pid());
    assert_eq!(before.len(), 4);
    let ran: Vec<u64> = before
        .iter()
        .zip(&after)
        .map(|((_, b), (_, a))| a - b)
        .collect();
    // 400 connections over 4 workers: ~100 each. A worker the kernel sends
    // none runs only its timers, well under a tenth of the average.
    let average = ran.iter().sum::<u64>() / 4;
    assert!(
        ran.iter().all(|&r| r > average / 10),
        "run time per worker (ns): {ran:?}"
    );
}
