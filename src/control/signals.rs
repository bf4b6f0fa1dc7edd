//! The control thread's loop: signals, the once-a-second status sample,
//! and the end of a graceful stop.
//!
//! - SIGHUP: reload the config file ([`Control::reload`]); a bad file
//!   changes nothing and the reason is logged.
//! - SIGTERM, SIGINT: drain ([`crate::state::lifecycle`]); a second one stops at
//!   once.
//! - SIGUSR1: reopen the access log (logrotate).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

use super::history::Sample;
use super::Control;
use crate::state::lifecycle::Phase;

/// How often the loop looks at signals and workers.
const POLL: Duration = Duration::from_millis(50);
/// How often a status sample is taken.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// After a forced stop, how long workers get to flush their logs.
const FLUSH_TIME: Duration = Duration::from_secs(2);

/// Catch the signals corelb handles. Done before the workers start, so a
/// signal sent as soon as the process is up is never the default action
/// (which would kill it).
pub fn catch() -> std::io::Result<Signals> {
    Signals::new([SIGHUP, SIGINT, SIGTERM, SIGUSR1])
}

/// Take one status sample now.
pub fn sample(control: &Control) {
    let snapshot = control.shared.snapshot();
    let sample = Sample::take(
        Instant::now(),
        &snapshot,
        control.shared.all_worker_metrics(),
    );
    control
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(sample);
}

fn all_finished(workers: &[JoinHandle<()>]) -> bool {
    workers.iter().all(JoinHandle::is_finished)
}

fn wait_finished(workers: &[JoinHandle<()>], within: Duration) {
    let give_up = Instant::now() + within;
    while !all_finished(workers) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run until the process should exit; returns its exit code.
pub fn run(control: &Arc<Control>, mut signals: Signals, workers: Vec<JoinHandle<()>>) -> u8 {
    let mut next_sample = Instant::now();
    let mut drain_deadline: Option<Instant> = None;
    loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => match control.reload() {
                    Ok(message) => info!("SIGHUP: {message}"),
                    Err(message) => error!("SIGHUP: {message}"),
                },
                SIGUSR1 => {
                    control.shared.reopen_logs();
                    info!("SIGUSR1: reopening the access log");
                }
                _ => {
                    if control.shared.lifecycle.advance(Phase::Draining) {
                        let timeout = control.shutdown_timeout();
                        info!(
                            "graceful stop: draining {} open connection(s), for at most {}",
                            control.shared.limit.open(),
                            humantime::format_duration(timeout)
                        );
                        drain_deadline = Some(Instant::now() + timeout);
                    } else {
                        warn!(
                            "second stop signal: stopping now, cutting {} open connection(s)",
                            control.shared.limit.open()
                        );
                        control.shared.lifecycle.advance(Phase::Stopping);
                        wait_finished(&workers, FLUSH_TIME);
                        return 1;
                    }
                }
            }
        }
        let now = Instant::now();
        if now >= next_sample {
            sample(control);
            next_sample = now + SAMPLE_EVERY;
        }
        if let Some(deadline) = drain_deadline {
            if all_finished(&workers) {
                info!("graceful stop: done, every connection closed");
                return 0;
            }
            if now >= deadline {
                warn!(
                    "graceful stop: --shutdown-timeout reached, cutting {} open connection(s)",
                    control.shared.limit.open()
                );
                control.shared.lifecycle.advance(Phase::Stopping);
                wait_finished(&workers, FLUSH_TIME);
                return 0;
            }
        } else if all_finished(&workers) {
            error!("every worker has stopped; exiting");
            return 1;
        }
        std::thread::sleep(POLL);
    }
}
