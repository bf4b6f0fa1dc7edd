//! The control plane: the one writer of what the workers share.
//!
//! [`Control`] holds the [`Shared`] state the workers read (the published
//! [`Snapshot`], metrics blocks, limits, lifecycle), the backend
//! [`Registry`] snapshots are built from, the status history and facts
//! about the process. Changes — a reload (SIGHUP, `POST /reload`), an
//! admin API call — happen on control threads, one at a time under
//! [`Control`]'s lock, and reach the workers only as a new snapshot
//! published through [`Shared`].
//!
//! The desired configuration is kept here too: a reload replaces it with
//! the file (and flags), an admin change edits it; either way the next
//! snapshot is built from it.

pub mod api;
pub mod discovered;
pub mod history;
pub mod signals;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::config::cli::Cli;
use crate::config::discovery::DiscoverySource;
use crate::config::{AdminAuth, Config, DiscoveryTiming};
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::state::backend::BackendState;
use crate::state::origin::Origin;
use crate::state::registry::Registry;
use crate::tls_load;
use crate::transport::tls::connector::Connectors;
use crate::transport::tls::{TlsAcceptor, TlsCommon};
use discovered::{Discovered, Resolution, SourceReport};
use history::History;
use tracing::{info, warn};

/// Facts about the running process, fixed at start.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// corelb's version.
    pub version: &'static str,
    /// When it started.
    pub started: Instant,
    /// Worker threads.
    pub threads: usize,
    /// The io driver the workers use.
    pub driver: &'static str,
    /// Where clients connect: the first listener.
    pub listen: SocketAddr,
    /// Every listener: its address and scheme (`http`, `https`).
    pub listeners: Vec<(SocketAddr, &'static str)>,
    /// How long a graceful stop may take (restart-only, so fixed here and
    /// read without waiting for a change in progress).
    pub shutdown_timeout: std::time::Duration,
}

/// What only the control plane touches, under [`Control`]'s lock.
struct ControlState {
    /// What the next snapshot is built from.
    desired: Config,
    /// Backend state and counters by address.
    registry: Registry,
    /// The last generation published.
    generation: u64,
    /// Admin API changes since the last load of the file.
    runtime_changes: u64,
    /// Each pool's TLS client side (`None`: plaintext), in the order of
    /// `desired.pools`; built with it on start and reload (admin changes
    /// never add or remove pools).
    connectors: Connectors,
    /// Backends found by discovery, added to the desired pools when a
    /// snapshot is built.
    discovered: Discovered,
}

/// The writer of shared state. See the module docs.
pub struct Control {
    /// Facts fixed at start.
    pub info: ProcessInfo,
    /// What the workers read.
    pub shared: Arc<Shared>,
    /// Ticket keys and session cache of the TLS listeners.
    tls: TlsCommon,
    /// Each listener's TLS acceptor (`None`: plaintext), in listener
    /// order; a reload swaps their certificates.
    pub acceptors: Vec<Option<Arc<TlsAcceptor>>>,
    /// Reloads that took effect.
    pub reloads_ok: AtomicU64,
    /// Reloads refused (bad file).
    pub reloads_failed: AtomicU64,
    /// Per-second samples for `/status` and the dashboard.
    pub history: Mutex<History>,
    /// The flags, to load the file again on reload (fixed at start).
    cli: Cli,
    /// Held for a whole reload, so two reloads (SIGHUP and `POST /reload`)
    /// apply in the order they read the file. The file is read and checked
    /// under this lock only, never under `state`'s.
    reloading: Mutex<()>,
    state: Mutex<ControlState>,
}

impl Control {
    /// The control plane for `config`, publishing generation 1.
    pub fn new(
        config: Config,
        cli: Cli,
        driver: &'static str,
        listeners: Vec<(SocketAddr, &'static str)>,
        tls: TlsCommon,
        acceptors: Vec<Option<Arc<TlsAcceptor>>>,
        connectors: Connectors,
    ) -> Arc<Self> {
        let threads = config.process.threads;
        let listener_count = listeners.len();
        let mut registry = Registry::new(threads);
        let first = Snapshot::build(&config, &mut registry, 1, &connectors);
        Arc::new(Self {
            info: ProcessInfo {
                version: env!("CARGO_PKG_VERSION"),
                started: Instant::now(),
                threads,
                driver,
                listen: listeners[0].0,
                listeners,
                shutdown_timeout: config.process.shutdown_timeout,
            },
            tls,
            acceptors,
            shared: Shared::new(first, threads, listener_count),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            history: Mutex::new(History::default()),
            cli,
            reloading: Mutex::new(()),
            state: Mutex::new(ControlState {
                desired: config,
                registry,
                generation: 1,
                runtime_changes: 0,
                connectors,
                discovered: Discovered::default(),
            }),
        })
    }

    /// Who may use the admin API now: its token and the host names it
    /// answers to (reloadable).
    pub fn admin_auth(&self) -> AdminAuth {
        self.lock().desired.auth.clone()
    }

    fn lock(&self) -> MutexGuard<'_, ControlState> {
        // A panic while holding the lock leaves consistent data (every
        // change is built aside and published whole): keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Build a snapshot from the desired config, with the backends
    /// discovery found, and publish it. With `check_new`, a discovered
    /// backend new to the registry, in a pool with health checks, starts
    /// down: it gets traffic once `rise` probes pass (then with slow start,
    /// if configured). Without (a source's first set, as at start), it is
    /// up at once, as configured backends are at start.
    fn publish(&self, state: &mut ControlState, check_new: bool) -> u64 {
        state.generation += 1;
        let effective = state.discovered.apply_to(&state.desired);
        let unchecked: Vec<SocketAddr> = effective
            .pools
            .iter()
            .filter(|p| check_new && p.health_path.is_some())
            .flat_map(|p| p.backends.iter())
            .filter(|b| b.origin != Origin::Static && !state.registry.knows(b.addr))
            .map(|b| b.addr)
            .collect();
        let snapshot = Snapshot::build(
            &effective,
            &mut state.registry,
            state.generation,
            &state.connectors,
        );
        for addr in unchecked {
            let stats = state.registry.backend(addr);
            stats.change_state(BackendState::Up, BackendState::Down, 0);
        }
        let entries: Vec<(&str, SocketAddr)> = effective
            .pools
            .iter()
            .flat_map(|p| p.backends.iter().map(|b| (p.name.as_str(), b.addr)))
            .collect();
        state.registry.retain(&entries);
        self.shared.publish(snapshot);
        state.generation
    }

    /// Read `new`'s TLS files and use them: the ticket keys and, if the
    /// listeners are the same ones, their certificates; all of them or, on
    /// any bad file, none. The warnings to log.
    fn reload_tls(&self, new: &Config, same_listeners: bool) -> Result<Vec<String>, String> {
        let keys = TlsCommon::read_ticket_keys(new.tls.ticket_keys.as_deref())?;
        let warnings = if same_listeners {
            tls_load::reload(&new.listeners, &self.acceptors, &self.tls)?
        } else {
            Vec::new()
        };
        self.tls.use_ticket_keys(keys);
        Ok(warnings)
    }

    /// The discovery sources of the desired config, by pool, and how they
    /// are resolved (for the `corelb-discovery` thread).
    pub fn discovery_sources(&self) -> (DiscoveryTiming, Vec<(String, DiscoverySource)>) {
        let state = self.lock();
        let sources = state
            .desired
            .pools
            .iter()
            .flat_map(|p| p.discovery.iter().map(|s| (p.name.clone(), s.clone())))
            .collect();
        (state.desired.discovery.clone(), sources)
    }

    /// Take one resolution of `source` (of pool `pool`) from the discovery
    /// thread; a changed set of backends is published at once, as a
    /// difference (see [`Self::publish`]).
    pub fn discovered(&self, pool: &str, source: &DiscoverySource, resolution: Resolution) {
        let mut state = self.lock();
        let configured = state
            .desired
            .pools
            .iter()
            .any(|p| p.name == pool && p.discovery.contains(source));
        if !configured {
            return; // a reload removed it while it was being resolved
        }
        let label = source.label();
        let before = state.discovered.last_result(pool, &label);
        let (result, detail) = (resolution.result, resolution.detail.clone());
        if let Some(change) = state.discovered.record(pool, source, resolution) {
            let generation = self.publish(&mut state, !change.first);
            info!(
                "pool {pool}: {label}: {} added, {} removed (generation {generation})",
                change.added, change.removed
            );
        }
        if result != "ok" && before != Some(result) {
            warn!("pool {pool}: {label}: {result}: {detail}");
        }
    }

    /// Every discovery source's last resolution.
    pub fn discovery_reports(&self) -> Vec<SourceReport> {
        self.lock().discovered.reports()
    }

    /// Load the config file (and flags) again and publish it. A bad file
    /// changes nothing. `Ok` says what happened, for the log and the API.
    ///
    /// The file is read and checked before taking the state lock, so
    /// admin calls and the status sample never wait on the file.
    pub fn reload(&self) -> Result<String, String> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        if self.cli.config.is_none() {
            // Flags are all there is: re-applying them would only undo
            // admin changes, which an operator did not ask for by habit.
            return Ok(
                "nothing to re-read: corelb was started without --config; configuration kept"
                    .into(),
            );
        }
        let new = match Config::load(&self.cli) {
            Ok(new) => new,
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                return Err(format!("reload failed, configuration kept: {e}"));
            }
        };
        // Backend CA files are read again too, before anything changes.
        let (connectors, mut notes) = match tls_load::connectors(&new.pools) {
            Ok(built) => built,
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                return Err(format!("reload failed, configuration kept: {e}"));
            }
        };
        for warning in &notes {
            tracing::warn!("{warning}");
        }
        let mut state = self.lock();
        let restart_only = state.desired.restart_only_changes(&new);
        if !restart_only.is_empty() {
            notes.push(format!(
                "changes to {} take a restart and were not applied",
                restart_only.join(", ")
            ));
        }
        if state.runtime_changes > 0 {
            notes.push(format!(
                "the file replaces {} admin API change(s)",
                state.runtime_changes
            ));
        }
        // Keep what cannot change live, take the rest from the file.
        let kept = &state.desired;
        // The listeners' sockets stay; the TLS files are read again.
        let same_listeners = kept.same_listeners(&new);
        match self.reload_tls(&new, same_listeners) {
            Ok(warnings) => notes.extend(warnings),
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                return Err(format!("reload failed, configuration kept: {e}"));
            }
        }
        let listeners = if same_listeners {
            new.listeners.clone()
        } else {
            kept.listeners.clone()
        };
        let merged = Config {
            process: kept.process.clone(),
            listeners,
            takeover: kept.takeover,
            ..new
        };
        state.desired = merged;
        state.connectors = connectors;
        state.runtime_changes = 0;
        let generation = self.publish(&mut state, true);
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        let summary = state.desired.summary();
        let mut message = format!("reloaded: generation {generation}, {summary}");
        for note in notes {
            message.push_str("; ");
            message.push_str(&note);
        }
        Ok(message)
    }
}
