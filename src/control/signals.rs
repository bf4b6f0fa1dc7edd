//! The control thread's loop: signals, the once-a-second status sample,
//! and the end of a graceful stop.
//!
//! - SIGHUP: reload the config file ([`Control::reload`]) on the
//!   `corelb-reload` thread, never on this one: a slow or stuck read must
//!   not delay a stop. SIGHUPs that arrive during a reload make one more
//!   reload after it. A bad file changes nothing and the reason is logged.
//! - SIGTERM, SIGINT: drain ([`crate::state::lifecycle`]); a second one stops at
//!   once.
//! - SIGUSR1: reopen the access log (logrotate).

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

use super::Control;
use crate::memory;
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

/// Take one status sample now; true if backends left the history.
pub fn sample(control: &Control) -> bool {
    // Activity first: a counter that moves after it is read shows in the
    // next reading's activity, so it is never skipped for good.
    let activity = control.shared.activity();
    let snapshot = control.shared.snapshot();
    let gone = control
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(
            Instant::now(),
            &snapshot,
            activity,
            control.shared.all_worker_metrics(),
        );
    gone > 0
}

/// After backends leave, how many times (a second apart) a thread that
/// freed them hands memory back: the last references to them (an idle
/// worker's old snapshot) go within a second or two.
const GIVE_BACK_TIMES: u32 = 5;

/// Start the thread that reloads on SIGHUP; send to the returned end to
/// ask for a reload. `None` (and an error logged) if it cannot start.
fn start_reloader(control: &Arc<Control>) -> Option<SyncSender<()>> {
    // One slot: a reload asked for while one runs; more asks add nothing.
    let (ask, asked) = sync_channel(1);
    let control = Arc::clone(control);
    let started = std::thread::Builder::new()
        .name("corelb-reload".into())
        .spawn(move || reload_loop(&control, &asked));
    match started {
        Ok(_) => Some(ask),
        Err(e) => {
            error!("SIGHUP will not reload: cannot start the reload thread: {e}");
            None
        }
    }
}

fn reload_loop(control: &Control, asked: &Receiver<()>) {
    // This thread allocated the configuration a reload replaces, so it
    // hands its memory back after each reload (see `crate::memory`).
    let mut give_back = 0;
    loop {
        match asked.recv_timeout(SAMPLE_EVERY) {
            Ok(()) => {
                crate::systemd::notify::reloading();
                match control.reload() {
                    Ok(message) => info!("SIGHUP: {message}"),
                    Err(message) => error!("SIGHUP: {message}"),
                }
                // Over, applied or not (a bad file changes nothing).
                crate::systemd::notify::ready();
                give_back = GIVE_BACK_TIMES;
            }
            Err(RecvTimeoutError::Timeout) if give_back > 0 => {
                give_back -= 1;
                memory::give_back();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn ask_reload(reloader: Option<&SyncSender<()>>) {
    match reloader.map(|r| r.try_send(())) {
        Some(Ok(())) => {}
        Some(Err(TrySendError::Full(()))) => {
            info!("SIGHUP: a reload is already waiting to run; this one is folded into it")
        }
        _ => error!("SIGHUP: not reloaded, the reload thread is not running"),
    }
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
    let reloader = start_reloader(control);
    let mut give_back = 0;
    loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => ask_reload(reloader.as_ref()),
                SIGUSR1 => {
                    control.shared.reopen_logs();
                    info!("SIGUSR1: reopening the access log");
                }
                _ => {
                    if control.shared.lifecycle.advance(Phase::Draining) {
                        crate::systemd::notify::stopping();
                        let timeout = control.info.shutdown_timeout;
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
            // Backends left the history (and, by now, the registry): hand
            // their memory back for the next few seconds.
            if sample(control) {
                give_back = GIVE_BACK_TIMES;
            }
            if give_back > 0 {
                give_back -= 1;
                memory::give_back();
            }
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
