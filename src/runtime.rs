//! Starting the data plane: one pinned worker thread per core, each with
//! its own monoio runtime and its own listener.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use tracing::{error, info, warn};

use crate::access_log::AccessLog;
use crate::config::cli::Cli;
use crate::config::{Config, IoDriver};
use crate::control::Control;
use crate::proxy::ListenerInfo;
use crate::state::limits;
use crate::steering::{self, WorkerThreads};
use crate::systemd::activation::Handed;
use crate::tls_load;
use crate::transport::tls::{TlsAcceptor, TlsCommon};
use crate::worker::listen::{bind_listeners, refuse_busy, workers_of_handed};
use crate::worker::Endpoint;

/// Submission queue entries per io_uring.
const URING_ENTRIES: u32 = 4096;

/// A running corelb.
pub struct Running {
    /// Where its first listener accepts clients (the real port when the
    /// config said 0).
    pub local_addr: SocketAddr,
    /// Every listener's address, in configuration order.
    pub local: Vec<SocketAddr>,
    /// The io driver the workers use (with its io_uring setup).
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

/// How each worker's io_uring is set up, best first.
///
/// By default io_uring completes a socket read that had to wait as task
/// work run the instant the data arrives, interrupting the worker, while
/// the sending CPU still holds that socket's lock: the worker spins on it
/// (`lock_sock_nested` under `io_req_task_submit`, 8-9 % of its samples).
/// With `DEFER_TASKRUN` that work waits until the worker asks for
/// completions, as an epoll server reads when it gets round to it; it
/// needs `SINGLE_ISSUER`, which holds: each ring is used only by the
/// worker thread that made it. `COOP_TASKRUN` at least spares the
/// interrupt (Linux 5.19; `DEFER_TASKRUN` is 6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UringSetup {
    /// `DEFER_TASKRUN` + `SINGLE_ISSUER`.
    DeferTaskrun,
    /// `COOP_TASKRUN` + `TASKRUN_FLAG`.
    CoopTaskrun,
    /// No setup flags.
    Plain,
}

impl UringSetup {
    /// Every setup, best first.
    const PREFERENCE: [UringSetup; 3] = [Self::DeferTaskrun, Self::CoopTaskrun, Self::Plain];

    fn builder(self) -> io_uring::Builder {
        let mut b = io_uring::IoUring::builder();
        match self {
            Self::DeferTaskrun => {
                b.setup_defer_taskrun().setup_single_issuer();
            }
            Self::CoopTaskrun => {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            Self::Plain => {}
        }
        b
    }

    /// What the start-up line and the metrics call the driver.
    pub fn driver_name(self) -> &'static str {
        match self {
            Self::DeferTaskrun => "io_uring (DEFER_TASKRUN, SINGLE_ISSUER)",
            Self::CoopTaskrun => "io_uring (COOP_TASKRUN, TASKRUN_FLAG)",
            Self::Plain => "io_uring",
        }
    }

    /// The first setup `accepts` (the kernel) takes; `Plain` if none.
    fn best(mut accepts: impl FnMut(Self) -> bool) -> Self {
        Self::PREFERENCE
            .into_iter()
            .find(|&setup| accepts(setup))
            .unwrap_or(Self::Plain)
    }

    /// The best setup this kernel accepts, found by making a small ring
    /// with each (an unknown flag is refused with `EINVAL`).
    pub fn probe() -> Self {
        Self::best(|setup| setup.builder().build(8).is_ok())
    }

    /// The setups to fall back on after this one failed, in order.
    fn fallbacks(self) -> impl Iterator<Item = Self> {
        Self::PREFERENCE
            .into_iter()
            .skip_while(move |&s| s != self)
            .skip(1)
    }
}

/// The io driver a worker runs: epoll, or io_uring with its setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Epoll,
    Uring(UringSetup),
}

impl Driver {
    /// What the start-up line and the metrics call it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Epoll => "epoll",
            Self::Uring(setup) => setup.driver_name(),
        }
    }
}

/// Which driver `choice` means on this machine, or why it cannot be had.
pub fn resolve_driver(choice: IoDriver) -> Result<Driver, String> {
    let uring = monoio::utils::detect_uring();
    match choice {
        IoDriver::Uring if !uring => {
            Err("io_uring is not available on this kernel (--io-driver uring); use --io-driver epoll or auto".into())
        }
        IoDriver::Uring | IoDriver::Auto if uring => Ok(Driver::Uring(UringSetup::probe())),
        IoDriver::Epoll | IoDriver::Auto | IoDriver::Uring => Ok(Driver::Epoll),
    }
}

/// Run `future` to completion on a new monoio runtime using `driver`.
/// A ring the kernel refuses with this setup (e.g. under a seccomp or
/// memory limit the probe did not meet) is made with the next one.
pub fn block_on_driver<F: Future>(driver: Driver, future: F) -> io::Result<F::Output> {
    let setup = match driver {
        Driver::Epoll => {
            return Ok(RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .build()?
                .block_on(future))
        }
        Driver::Uring(setup) => setup,
    };
    let build = |setup: UringSetup| {
        RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .uring_builder(setup.builder())
            .enable_timer()
            .build()
    };
    let mut tried = setup;
    let mut runtime = build(tried);
    for fallback in setup.fallbacks() {
        let Err(e) = &runtime else { break };
        warn!(
            "cannot set up {} ({e}); using {}",
            tried.driver_name(),
            fallback.driver_name()
        );
        tried = fallback;
        runtime = build(fallback);
    }
    Ok(runtime?.block_on(future))
}

/// Steer new connections among the workers, in each listener's
/// SO_REUSEPORT group (`groups`: every worker's socket of one listener, and
/// its address). Without it connections are spread evenly, which still
/// works.
fn start_steering(
    groups: &[(Vec<std::net::TcpListener>, SocketAddr)],
    threads: &Arc<WorkerThreads>,
) {
    let started = groups
        .iter()
        .map(|(sockets, addr)| {
            let ours = sockets
                .iter()
                .map(steering::group::socket_inode)
                .collect::<std::io::Result<Vec<u64>>>()?;
            Ok((sockets[0].try_clone()?, *addr, ours))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .and_then(|groups| steering::start(groups, Arc::clone(threads)));
    if let Err(e) = started {
        warn!("accept steering is off ({e}); new connections are spread evenly");
    }
}

/// Bind every listener once per worker, refusing a busy address unless
/// taking over; a listener whose socket systemd handed over
/// (`crate::systemd::activation`) uses it instead. Each listener's sockets
/// (one per worker) with its real address (the port the kernel chose for
/// port 0).
fn bind_all(
    config: &Config,
    mut handed: Vec<Handed>,
) -> Result<Vec<(Vec<std::net::TcpListener>, SocketAddr)>, String> {
    let mut groups = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        let (threads, backlog) = (config.process.threads, config.process.backlog);
        let sockets = match handed.iter().position(|h| h.addr == listener.addr) {
            Some(i) => workers_of_handed(handed.swap_remove(i), threads, backlog),
            None => {
                if !config.takeover {
                    refuse_busy(listener.addr)?;
                }
                bind_listeners(listener.addr, threads, backlog)
            }
        }
        .map_err(|e| format!("cannot listen on {} (--listen): {e}", listener.addr))?;
        let local = sockets[0]
            .local_addr()
            .map_err(|e| format!("cannot read listening address: {e}"))?;
        if config.takeover {
            match steering::group::who_listens_on_port(local.port()) {
                Some(who) if who != format!("process {} (corelb)", std::process::id()) => {
                    info!("--takeover: sharing {local} with {who} until it stops")
                }
                _ => info!("--takeover: no other process listens on {local}"),
            }
        }
        groups.push((sockets, local));
    }
    if let Some(unclaimed) = handed.first() {
        return Err(format!(
            "systemd handed corelb socket {:?} on {}, but no listener is on that address: \
             add --listen {} (or a [[listeners]] table with that address), or remove it from \
             the .socket unit",
            unclaimed.name, unclaimed.addr, unclaimed.addr
        ));
    }
    Ok(groups)
}

/// What each listener serves, shared by the workers: its TLS acceptor (the
/// certificates read now) and what its connections learn of it.
fn endpoints(
    config: &Config,
    local: &[SocketAddr],
    acceptors: &[Option<Arc<TlsAcceptor>>],
) -> Vec<Arc<Endpoint>> {
    // A redirect goes to the first TLS listener's port (443 if none).
    let https_port = config
        .listeners
        .iter()
        .zip(local)
        .find(|(l, _)| l.tls.is_some())
        .map_or(443, |(_, addr)| addr.port());
    config
        .listeners
        .iter()
        .zip(local)
        .zip(acceptors)
        .enumerate()
        .map(|(index, ((listener, addr), acceptor))| {
            Arc::new(Endpoint {
                tls: acceptor.clone(),
                h2: listener.h2,
                proxy_protocol: listener.proxy_protocol.clone(),
                info: ListenerInfo {
                    // `config::listeners::MAX_LISTENERS` keeps it in a `u8`.
                    index: index as u8,
                    tls_port: if listener.tls.is_some() {
                        addr.port()
                    } else {
                        0
                    },
                    redirect_to: if listener.redirect_https {
                        https_port
                    } else {
                        0
                    },
                },
            })
        })
        .collect()
}

/// Bind the listeners (or take those systemd handed over, `handed`) and
/// start the workers. `cli` is kept for reloads.
pub fn start(config: Config, cli: Cli, handed: Vec<Handed>) -> Result<Running, String> {
    let driver = resolve_driver(config.process.io_driver)?;
    let tls = TlsCommon::new(config.tls.ticket_keys.as_deref())?;
    let (acceptors, warnings) = tls_load::acceptors(&config.listeners, &tls)?;
    for warning in warnings {
        warn!("{warning}");
    }
    let acceptors: Vec<Option<Arc<TlsAcceptor>>> =
        acceptors.into_iter().map(|a| a.map(Arc::new)).collect();
    let (connectors, warnings) = tls_load::connectors(&config.pools)?;
    for warning in warnings {
        warn!("{warning}");
    }
    let groups = bind_all(&config, handed)?;
    let local: Vec<SocketAddr> = groups.iter().map(|(_, addr)| *addr).collect();
    let endpoints = endpoints(&config, &local, &acceptors);
    warn_if_short_of_descriptors(
        config.settings.max_connections,
        config.process.threads * local.len(),
    );
    let access_log = config.process.access_log();
    let cores = if config.process.pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let worker_count = config.process.threads;
    let threads = WorkerThreads::new(worker_count);
    if config.process.accept_steering && worker_count > 1 {
        start_steering(&groups, &threads);
    }
    let listener_facts = config
        .listeners
        .iter()
        .zip(&local)
        .map(|(l, addr)| (*addr, l.scheme()))
        .collect();
    let control = Control::new(
        config,
        cli,
        driver.name(),
        listener_facts,
        tls,
        acceptors,
        connectors,
    );
    // Before the workers: their first snapshot has the discovered backends.
    crate::discovery::start(Arc::clone(&control))
        .map_err(|e| format!("cannot start the discovery thread: {e}"))?;
    // Opened here, so a path that cannot be written is an error at start,
    // not a silent gap in the log.
    let mut logs = Vec::with_capacity(worker_count);
    for _ in 0..worker_count {
        logs.push(match &access_log {
            Some(cfg) => Some(
                AccessLog::open(cfg, control.shared.log_epoch(), &local).map_err(|e| {
                    format!("cannot open access log {} (--access-log): {e}", cfg.target)
                })?,
            ),
            None => None,
        });
    }

    // Worker `i` gets socket `i` of every listener.
    let mut per_worker: Vec<Vec<(std::net::TcpListener, Arc<Endpoint>)>> =
        (0..worker_count).map(|_| Vec::new()).collect();
    for ((sockets, _), endpoint) in groups.into_iter().zip(&endpoints) {
        for (w, socket) in sockets.into_iter().enumerate() {
            per_worker[w].push((socket, Arc::clone(endpoint)));
        }
    }
    let mut workers = Vec::with_capacity(worker_count);
    for ((id, listeners), log) in per_worker.into_iter().enumerate().zip(logs) {
        let shared = Arc::clone(&control.shared);
        let threads = Arc::clone(&threads);
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let handle = std::thread::Builder::new()
            .name(format!("corelb-w{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                threads.register_current(id);
                let result =
                    block_on_driver(driver, crate::worker::run(id, shared, listeners, log));
                if let Err(e) = result {
                    error!("worker {id}: cannot start the io runtime: {e}");
                    std::process::exit(1);
                }
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        workers.push(handle);
    }
    Ok(Running {
        local_addr: local[0],
        local,
        driver: driver.name(),
        control,
        workers,
    })
}

/// Say at start if `--max-connections` cannot be met: past the `nofile`
/// limit, connects upstream fail with EMFILE (answered 503
/// `local_resources`, never blamed on a backend) and accepts stall.
fn warn_if_short_of_descriptors(max_connections: usize, listeners: usize) {
    let needed = limits::descriptors_needed(max_connections, listeners);
    match limits::nofile_soft_limit() {
        Some(have) if have < needed => warn!(
            "--max-connections {max_connections} may need {needed} file descriptors \
             (a client and an upstream connection each, plus listeners), but the nofile \
             limit is {have}: raise it (systemd LimitNOFILE=, ulimit -n) or lower \
             --max-connections"
        ),
        _ => {}
    }
}

/// Every driver this machine can run: each io_uring setup the kernel
/// accepts, then epoll. For tests that must hold on all of them.
#[cfg(test)]
pub(crate) fn every_available_driver() -> Vec<Driver> {
    let mut drivers = Vec::new();
    if monoio::utils::detect_uring() {
        for setup in UringSetup::PREFERENCE {
            if setup.builder().build(8).is_ok() {
                drivers.push(Driver::Uring(setup));
            }
        }
    }
    drivers.push(Driver::Epoll);
    drivers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::task::Poll;
    use std::time::Duration;

    #[test]
    fn the_best_setup_the_kernel_accepts_is_chosen() {
        assert_eq!(UringSetup::best(|_| true), UringSetup::DeferTaskrun);
        let no_defer = |s| s != UringSetup::DeferTaskrun;
        assert_eq!(UringSetup::best(no_defer), UringSetup::CoopTaskrun);
        assert_eq!(
            UringSetup::best(|s| s == UringSetup::Plain),
            UringSetup::Plain
        );
        assert_eq!(UringSetup::best(|_| false), UringSetup::Plain);
    }

    #[test]
    fn a_refused_setup_falls_back_to_the_next_ones_in_order() {
        let after_defer: Vec<_> = UringSetup::DeferTaskrun.fallbacks().collect();
        assert_eq!(after_defer, [UringSetup::CoopTaskrun, UringSetup::Plain]);
        assert_eq!(UringSetup::Plain.fallbacks().count(), 0);
    }

    /// A task that is always ready to run again, so the worker's task
    /// queue never empties: the runtime then never parks.
    async fn spin_forever() {
        std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        })
        .await
    }

    /// Wait for bytes that arrive only after the read was submitted (so
    /// its completion is task work, the kind `DEFER_TASKRUN` defers), then
    /// for a timer, on a runtime made with `driver`, while another task
    /// keeps the queue full (monoio needed a patch for both: see
    /// vendor/README.md). Gives up after a generous deadline.
    fn completions_arrive_while_busy(driver: Driver) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            peer.write_all(b"late").unwrap();
            std::thread::sleep(Duration::from_secs(1));
        });
        std::thread::spawn(move || {
            block_on_driver(driver, async move {
                monoio::spawn(spin_forever());
                let mut stream = monoio::net::TcpStream::connect(addr).await.unwrap();
                let mut buf = bytes::BytesMut::with_capacity(16);
                let n = crate::io::read_some(&mut stream, &mut buf, 16)
                    .await
                    .unwrap();
                monoio::time::sleep(Duration::from_millis(10)).await;
                done_tx.send(buf[..n].to_vec()).unwrap();
            })
            .unwrap();
        });
        let got = done_rx.recv_timeout(Duration::from_secs(20));
        assert_eq!(
            got.as_deref(),
            Ok(&b"late"[..]),
            "{driver:?}: a read that waited must complete while the task queue stays full"
        );
        writer.join().unwrap();
    }

    #[test]
    fn every_setup_delivers_completions_to_a_worker_that_never_idles() {
        for driver in every_available_driver() {
            completions_arrive_while_busy(driver);
        }
    }
}
