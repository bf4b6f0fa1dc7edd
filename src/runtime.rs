//! Starting the data plane: one pinned worker thread per core, each with
//! its own monoio runtime and its own listener.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};
use tracing::{error, info, warn};

use crate::access_log::AccessLog;
use crate::cli::Cli;
use crate::config::{Config, IoDriver};
use crate::control::Control;
use crate::listener::{accept_loop, bind_listeners, refuse_busy};
use crate::steering::{self, WorkerThreads};
use crate::worker::Worker;

/// Submission queue entries per io_uring.
const URING_ENTRIES: u32 = 4096;

/// A running corelb.
pub struct Running {
    /// Where it accepts clients (the real port when the config said 0).
    pub local_addr: SocketAddr,
    /// The io driver the workers use.
    pub driver: &'static str,
    /// The owner of everything shared: snapshot, metrics, lifecycle.
    pub control: Arc<Control>,
    /// The worker threads, which end when a drain finishes.
    pub workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Block until every worker has stopped.
    pub fn wait(self) {
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Which driver `choice` means on this machine, or why it cannot be had.
pub fn resolve_driver(choice: IoDriver) -> Result<&'static str, String> {
    let uring = monoio::utils::detect_uring();
    match choice {
        IoDriver::Uring if !uring => {
            Err("io_uring is not available on this kernel (--io-driver uring); use --io-driver epoll or auto".into())
        }
        IoDriver::Uring => Ok("io_uring"),
        IoDriver::Epoll => Ok("epoll"),
        IoDriver::Auto if uring => Ok("io_uring"),
        IoDriver::Auto => Ok("epoll"),
    }
}

/// Run `future` to completion on a new monoio runtime using `driver`.
pub fn block_on_driver<F: Future>(driver: IoDriver, future: F) -> io::Result<F::Output> {
    Ok(match driver {
        IoDriver::Auto => RuntimeBuilder::<FusionDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()?
            .block_on(future),
        IoDriver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()?
            .block_on(future),
        IoDriver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(future),
    })
}

/// Steer new connections among the workers, whose `listeners` form one
/// SO_REUSEPORT group on `addr`. Without it connections are spread evenly,
/// which still works.
fn start_steering(
    listeners: &[std::net::TcpListener],
    threads: &Arc<WorkerThreads>,
    addr: SocketAddr,
) {
    let started = listeners
        .iter()
        .map(steering::group::socket_inode)
        .collect::<std::io::Result<Vec<u64>>>()
        .and_then(|ours| {
            let listener = listeners[0].try_clone()?;
            steering::start(listener, addr, ours, Arc::clone(threads))
        });
    if let Err(e) = started {
        warn!("accept steering is off ({e}); new connections are spread evenly");
    }
}

/// Bind the listeners and start the workers. `cli` is kept for reloads.
pub fn start(config: Config, cli: Cli) -> Result<Running, String> {
    let driver = resolve_driver(config.io_driver)?;
    if !config.takeover {
        refuse_busy(config.listen)?;
    }
    let listeners = bind_listeners(config.listen, config.threads, config.backlog)
        .map_err(|e| format!("cannot listen on {} (--listen): {e}", config.listen))?;
    let local_addr = listeners[0]
        .local_addr()
        .map_err(|e| format!("cannot read listening address: {e}"))?;
    if config.takeover {
        match steering::group::who_listens_on_port(local_addr.port()) {
            Some(who) if who != format!("process {} (corelb)", std::process::id()) => {
                info!("--takeover: sharing {local_addr} with {who} until it stops")
            }
            _ => info!("--takeover: no other process listens on {local_addr}"),
        }
    }
    let access_log = config.access_log.clone();
    let cores = if config.pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let threads = WorkerThreads::new(listeners.len());
    if config.accept_steering && listeners.len() > 1 {
        start_steering(&listeners, &threads, local_addr);
    }
    let io_driver = config.io_driver;
    let control = Control::new(config, cli, driver, local_addr);
    // Opened here, so a path that cannot be written is an error at start,
    // not a silent gap in the log.
    let mut logs = Vec::with_capacity(listeners.len());
    for _ in 0..listeners.len() {
        logs.push(match &access_log {
            Some(cfg) => Some(AccessLog::open(cfg, control.log_epoch()).map_err(|e| {
                format!("cannot open access log {} (--access-log): {e}", cfg.target)
            })?),
            None => None,
        });
    }

    let mut workers = Vec::with_capacity(listeners.len());
    for ((id, std_listener), log) in listeners.into_iter().enumerate().zip(logs) {
        let control = Arc::clone(&control);
        let threads = Arc::clone(&threads);
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let handle = std::thread::Builder::new()
            .name(format!("corelb-w{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                threads.register_current(id);
                let result = block_on_driver(io_driver, run_worker(id, control, std_listener, log));
                if let Err(e) = result {
                    error!("worker {id}: cannot start the io runtime: {e}");
                    std::process::exit(1);
                }
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        workers.push(handle);
    }
    Ok(Running {
        local_addr,
        driver,
        control,
        workers,
    })
}

/// One worker's life: serve until the drain has closed every connection
/// (or the process stops), then write out the access log.
async fn run_worker(
    id: usize,
    control: Arc<Control>,
    std_listener: std::net::TcpListener,
    log: Option<AccessLog>,
) {
    let listener = match monoio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            error!("worker {id}: cannot use listener: {e}");
            return;
        }
    };
    let worker = Rc::new(Worker::new(id, control, log));
    monoio::spawn(Rc::clone(&worker).run_ticks());
    let pruner = Rc::clone(&worker);
    monoio::spawn(async move { pruner.pool.run_pruner().await });
    if worker.access_log.is_some() {
        let flusher = Rc::clone(&worker);
        monoio::spawn(async move { flusher.run_log_flusher().await });
    }
    accept_loop(Rc::clone(&worker), listener).await;
    worker.wait_drained().await;
    if let Some(log) = &worker.access_log {
        log.flush();
    }
}
