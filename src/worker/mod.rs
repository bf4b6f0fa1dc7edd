//! One data-plane worker: its accept loop, its connections, and the
//! periodic tasks of its thread (timeouts, the drain, buffer trimming,
//! the access log).
//!
//! The flow runs one way: [`run`] builds the worker's
//! [`WorkerContext`], starts its tasks and runs its accept loop
//! ([`accept`]), which hands each connection to [`crate::proxy`]. Nothing
//! below calls back up: the drain, which must take the listener's queued
//! connections, is started here, from the tick task, which knows the
//! listener.

pub mod accept;
mod h2c;
mod handshake;
pub mod listen;
mod proxy_header;
mod refusals;

use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tracing::error;

use crate::access_log::AccessLog;
use crate::buffers::TRIM_INTERVAL;
use crate::deadline::TICK;
use crate::proxy::WorkerContext;
use crate::shared::Shared;
use crate::state::lifecycle::Phase;
pub use accept::Endpoint;

/// Open client connections from which a worker has its io_uring driver
/// collect completions eagerly after a busy turn (`set_eager_collect` in the
/// vendored monoio). Under `DEFER_TASKRUN` an enter runs the deferred work
/// of at most 20 completions, and with 2 000 connections the rest waited
/// turns of the loop: p99 4x nginx's (`perf/README.md`). Eager collects
/// cost CPU per request when the queue is short, as it is with a few
/// hundred connections, so below this they stay off.
const EAGER_COLLECT_CONNECTIONS: usize = 1024;

/// While draining, a kept-alive connection idle this long is closed. Not
/// at once: a client that has just read a response is about to send its
/// next request, and closing under it would fail that request; given a
/// moment, it gets an answer with `Connection: close` instead.
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// One worker's life: serve until the drain has closed every connection
/// (or the process stops), then write out the access log. `listeners`:
/// this worker's socket of each listener, with what it serves.
pub async fn run(
    id: usize,
    shared: Arc<Shared>,
    listeners: Vec<(std::net::TcpListener, Arc<Endpoint>)>,
    log: Option<AccessLog>,
) {
    let mut sockets = Vec::with_capacity(listeners.len());
    for (std_listener, endpoint) in listeners {
        match monoio::net::TcpListener::from_std(std_listener) {
            Ok(l) => sockets.push((l, endpoint)),
            Err(e) => {
                error!("worker {id}: cannot use listener: {e}");
                return;
            }
        }
    }
    let worker = Rc::new(WorkerContext::new(id, shared, log));
    let drain_targets: Vec<(RawFd, Arc<Endpoint>)> = sockets
        .iter()
        .map(|(l, endpoint)| (l.as_raw_fd(), Arc::clone(endpoint)))
        .collect();
    monoio::spawn(run_ticks(Rc::clone(&worker), drain_targets));
    let pruner = Rc::clone(&worker);
    monoio::spawn(async move { pruner.pool.run_pruner().await });
    let trimmer = Rc::clone(&worker);
    monoio::spawn(async move { run_trimmer(&trimmer).await });
    if worker.access_log.is_some() {
        let flusher = Rc::clone(&worker);
        monoio::spawn(async move { run_log_flusher(&flusher).await });
    }
    let accepting: Vec<_> = sockets
        .into_iter()
        .map(|(listener, endpoint)| {
            monoio::spawn(accept::accept_loop(Rc::clone(&worker), listener, endpoint))
        })
        .collect();
    worker.shared.lifecycle.worker_serving();
    for accept_loop in accepting {
        accept_loop.await;
    }
    wait_drained(&worker).await;
    if let Some(log) = &worker.access_log {
        log.flush();
    }
}

/// Every tick: expire socket waits, follow the lifecycle, and tell the
/// io_uring driver whether this worker is busy enough to collect
/// completions eagerly. Ends when the process stops. `listeners` are the
/// worker's listening sockets, open until the drain shuts them down.
async fn run_ticks(worker: Rc<WorkerContext>, listeners: Vec<(RawFd, Arc<Endpoint>)>) {
    loop {
        monoio::time::sleep(TICK).await;
        worker.deadlines.sweep(std::time::Instant::now());
        monoio::utils::set_eager_collect(worker.open_connections() >= EAGER_COLLECT_CONNECTIONS);
        match worker.shared.lifecycle.phase() {
            Phase::Running => {}
            Phase::Draining if !worker.draining() => start_drain(&worker, &listeners),
            Phase::Draining => {}
            Phase::Stopping => return,
        }
    }
}

/// Stop accepting: take what is already queued, then close the
/// listener (a connection left in its queue would be reset).
fn start_drain(worker: &Rc<WorkerContext>, listeners: &[(RawFd, Arc<Endpoint>)]) {
    worker.start_draining();
    worker.deadlines.start_drain(DRAIN_IDLE_GRACE);
    for (fd, endpoint) in listeners {
        accept::take_queued(worker, endpoint, *fd);
    }
}

/// Let go of the buffers and exchange blocks no exchange needed for a
/// whole interval, and of a snapshot a reload replaced, every
/// [`TRIM_INTERVAL`], for ever.
async fn run_trimmer(worker: &WorkerContext) {
    let mut collect_again = false;
    loop {
        monoio::time::sleep(TRIM_INTERVAL).await;
        let trimmed =
            worker.buffers.trim() + worker.head_slots.trim() + worker.exchange_slots.trim() > 0;
        let dropped = worker.refresh_routing() || trimmed;
        if dropped || collect_again {
            // mimalloc keeps freed pages for reuse until asked, and
            // hands back recently freed ones only on a later call:
            // without this, a burst's peak would stay resident.
            crate::memory::give_back();
        }
        collect_again = dropped;
    }
}

/// Write the access log out once a second, reopening it after SIGUSR1.
async fn run_log_flusher(worker: &WorkerContext) {
    let Some(log) = &worker.access_log else {
        return;
    };
    loop {
        monoio::time::sleep(Duration::from_secs(1)).await;
        log.flush_and_reopen(worker.shared.log_epoch());
    }
}

/// Wait until this worker's last connection has closed, or the process
/// is stopping.
async fn wait_drained(worker: &WorkerContext) {
    while worker.open_connections() > 0 && worker.shared.lifecycle.phase() != Phase::Stopping {
        monoio::time::sleep(TICK).await;
    }
}
