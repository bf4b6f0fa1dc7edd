//! The whole process: logging, signals, the data plane, the admin API and
//! the control loop, in the order that keeps each safe.

use std::sync::Arc;

use tracing::info;

use crate::config::cli::Cli;
use crate::config::Config;
use crate::control::{signals, Control};
use crate::runtime::{self, Running};

/// One line saying what runs: version, workers, driver, listener, pools.
fn start_summary(config_pools: &Config, running: &Running) -> String {
    let pools: Vec<String> = config_pools
        .pools
        .iter()
        .map(|p| {
            let backends: Vec<String> = p
                .backends
                .iter()
                .map(|b| {
                    if b.weight == 1 {
                        b.name.clone()
                    } else {
                        format!("{} (weight {})", b.name, b.weight)
                    }
                })
                .chain(p.discovery.iter().map(|s| s.label()))
                .collect();
            format!("{} [{}: {}]", p.name, p.algorithm, backends.join(", "))
        })
        .collect();
    // The first address first, alone: tools read the line's first word.
    let listeners: Vec<String> = config_pools
        .listeners
        .iter()
        .zip(&running.local)
        .map(|(l, addr)| match (&l.tls, l.redirect_https) {
            (Some(_), _) => format!("{addr} (https)"),
            (None, true) => format!("{addr} (redirects to https)"),
            (None, false) => addr.to_string(),
        })
        .collect();
    format!(
        "corelb {}: listening on {} ({} workers, {}); pools: {}",
        env!("CARGO_PKG_VERSION"),
        listeners.join(" and "),
        running.workers.len(),
        running.driver,
        pools.join("; ")
    )
}

/// Run corelb with `config` until it is stopped; returns the exit code.
/// `started` is called once everything is up (the demo prints its help).
pub fn serve(config: Config, cli: Cli, started: impl FnOnce(&Arc<Control>)) -> Result<u8, String> {
    // First, while no other thread runs: it clears systemd's variables.
    let handed = crate::systemd::activation::take()?;
    crate::logging::init(config.process.log_level, config.process.log_format);
    // Before any thread starts: a signal in the first instant must not
    // take the default action (SIGHUP and SIGTERM kill, SIGUSR1 too).
    let signals = signals::catch().map_err(|e| format!("cannot handle signals: {e}"))?;
    let summary_config = config.clone();
    let admin = config.process.admin;
    let running = runtime::start(config, cli, handed)?;
    info!("{}", start_summary(&summary_config, &running));
    let control = Arc::clone(&running.control);
    crate::admin::start(admin, summary_config.process.admin_header_timeout, &control)?;
    crate::resilience::thread::start(Arc::clone(&control.shared))
        .map_err(|e| format!("cannot start the health-check thread: {e}"))?;
    if let Some(log) = &summary_config.process.access_log() {
        info!("access log: {} ({:?})", log.target, log.format);
    }
    started(&control);
    wait_serving(&control, running.workers.len());
    crate::systemd::notify::ready();
    signals::sample(&control);
    Ok(signals::run(&control, signals, running.workers))
}

/// Wait (a few seconds at most) until every worker has its accept loops
/// running, for `READY=1` to mean what it says.
fn wait_serving(control: &Control, workers: usize) {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while control.shared.lifecycle.workers_serving() < workers
        && std::time::Instant::now() < give_up
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
