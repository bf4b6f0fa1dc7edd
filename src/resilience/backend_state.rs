//! One backend's state as the resilience thread publishes it each tick:
//! what the workers counted since the last tick goes to the backend's
//! breaker, and the breaker's phase together with the health checks'
//! verdict becomes the state byte the balancers read.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::info;

use super::breaker::{Observed, Phase, HALF_OPEN_TRIALS};
use super::health::Health;
use super::tracked::Tracked;
use crate::config::resilience::BreakerPolicy;
use crate::config::Resilience;
use crate::state::backend::{BackendState, BackendStats};

/// Weight of the newest tick in a backend's failure-rate average.
const FAILURE_RATE_ALPHA: f64 = 0.2;

/// Tries that succeeded and failed, summed over every worker.
pub(super) fn totals(stats: &BackendStats, fail_on_5xx: bool) -> (u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    for c in stats.all_counters() {
        for (class, counter) in c.responses.iter().enumerate() {
            if class == 4 && fail_on_5xx {
                failed += counter.get();
            } else {
                ok += counter.get();
            }
        }
        failed += c.failures.iter().map(|f| f.get()).sum::<u64>();
    }
    (ok, failed)
}

/// Feed one backend's counts to its breaker, and publish the state that
/// breaker and health checks together call for.
pub(super) fn advance_backend(
    addr: SocketAddr,
    tracked: &mut Tracked,
    policy: &BreakerPolicy,
    settings: &Resilience,
    may_open: bool,
    now: Instant,
) {
    let current = tracked.stats.state();
    let (ok, failed) = totals(&tracked.stats, settings.fail_on_5xx);
    let observed = Observed {
        ok: ok.saturating_sub(tracked.totals.0),
        failed: failed.saturating_sub(tracked.totals.1),
        tripped: current == BackendState::Open
            && matches!(tracked.published, BackendState::Up | BackendState::HalfOpen),
    };
    tracked.totals = (ok, failed);
    let tries = observed.ok + observed.failed;
    if tries > 0 {
        let rate = observed.failed as f64 / tries as f64;
        tracked.failure_rate += FAILURE_RATE_ALPHA * (rate - tracked.failure_rate);
    }
    let healthy = tracked.health.as_ref().is_none_or(Health::is_up);
    let before = tracked.breaker.phase();
    let phase = tracked.breaker.advance(policy, observed, may_open, now);
    let wanted = if !healthy {
        BackendState::Down
    } else {
        match phase {
            Phase::Closed => BackendState::Up,
            Phase::Open { .. } => BackendState::Open,
            Phase::HalfOpen => BackendState::HalfOpen,
        }
    };
    if matches!(phase, Phase::Open { .. }) && !matches!(before, Phase::Open { .. }) {
        // Only probes after the ejection may end it early (`probe.rs`).
        if let Some(health) = tracked.health.as_mut() {
            health.forget_passes();
        }
        tracked
            .stats
            .resilience
            .ejections
            .fetch_add(1, Ordering::Relaxed);
        let why = if observed.tripped {
            format!("{} failed tries in a row", settings.max_fails.max(1))
        } else {
            format!(
                "{}% or more of recent tries failed",
                settings.fail_ratio_percent
            )
        };
        let Phase::Open { until } = phase else {
            unreachable!()
        };
        let secs = until.saturating_duration_since(now).as_secs_f64();
        match before {
            Phase::HalfOpen => {
                info!("backend {addr}: trial request failed: ejected again for {secs:.0}s")
            }
            _ => info!("backend {addr}: ejected for {secs:.0}s: {why}"),
        }
    }
    if wanted == current {
        tracked.published = current;
        if current == BackendState::HalfOpen {
            let refill = *tracked
                .half_open_refill
                .get_or_insert(now + settings.ejection_time);
            if now >= refill {
                tracked
                    .stats
                    .change_state(current, current, HALF_OPEN_TRIALS);
                tracked.half_open_refill = Some(now + settings.ejection_time);
            }
        } else {
            tracked.half_open_refill = None;
        }
        return;
    }
    tracked.half_open_refill = None;
    if tracked
        .stats
        .change_state(current, wanted, HALF_OPEN_TRIALS)
    {
        match (current, wanted) {
            (_, BackendState::HalfOpen) => {
                info!("backend {addr}: half-open: {HALF_OPEN_TRIALS} trial requests")
            }
            (BackendState::HalfOpen, BackendState::Up) => {
                info!("backend {addr}: trial request succeeded: back in rotation")
            }
            _ => {}
        }
        if wanted == BackendState::Up {
            tracked.up_since = Some(now);
        }
        tracked.published = wanted;
    }
}
