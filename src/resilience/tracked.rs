//! What the `corelb-health` thread keeps between ticks: per backend
//! address a [`Tracked`] (breaker, probe results, counter totals, the
//! state it last published), and the [`State`] its tick and probe tasks
//! share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::breaker::Breaker;
use super::health::{Health, HealthPolicy};
use super::weights::LatencyFloor;
use crate::shared::Shared;
use crate::state::backend::{BackendState, BackendStats};

/// What the thread keeps about one backend address.
pub(super) struct Tracked {
    pub(super) stats: Arc<BackendStats>,
    pub(super) breaker: Breaker,
    /// Probe results, while the backend is probed.
    pub(super) health: Option<Health>,
    /// How to probe it now (`None`: not probed; a running probe loop ends).
    pub(super) probe_policy: Option<HealthPolicy>,
    pub(super) probing: bool,
    /// The state this thread published last.
    pub(super) published: BackendState,
    /// Counter totals at the last tick: (ok, failed).
    pub(super) totals: (u64, u64),
    /// Smoothed share of failed tries.
    pub(super) failure_rate: f64,
    /// Its latency estimate's floor over the last second (weights).
    pub(super) latency: LatencyFloor,
    /// When it last became available (slow start); `None`: since start.
    pub(super) up_since: Option<Instant>,
    /// Seen in the current snapshot this tick.
    pub(super) seen: bool,
    /// The snapshot's pools that list it (indices), this tick.
    pub(super) pools: Vec<usize>,
    /// While half-open: when to hand out trial permits again if the
    /// trials came to nothing (a client that left mid-try counts neither
    /// way, and must not keep the backend half-open for ever).
    pub(super) half_open_refill: Option<Instant>,
}

/// Per pool entry (pool name, address): its share of full weight now.
pub(super) type Shares = HashMap<(String, SocketAddr), f64>;

/// Everything the thread keeps, shared by its tick and probe tasks.
pub(super) struct State {
    pub(super) shared: Arc<Shared>,
    pub(super) backends: HashMap<SocketAddr, Tracked>,
    pub(super) shares: Shares,
    /// The first tick takes the backends configured at start as they are:
    /// slow start is for returns, not for the first start.
    pub(super) started: bool,
    pub(super) last_tick: Instant,
}
