//! What the resilience thread sets per pool each tick: whether the pool is
//! in panic, and its entries' effective weights.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::tracked::State;
use super::weights::{self, Inputs};
use crate::config::Resilience;
use crate::snapshot::Pool;
use crate::state::backend::{Backend, BackendState};

/// A pool with fewer than `threshold` percent of its entries available
/// lets its ejected (breaker-open) backends take traffic again: better
/// some errors than refusing everything. Backends down by health checks
/// stay out.
pub(super) fn update_panic(pool: &Pool, threshold: u32) {
    let live: Vec<_> = pool.backends.iter().filter(|b| !b.drained).collect();
    let available = live
        .iter()
        .filter(|b| matches!(b.state(), BackendState::Up | BackendState::HalfOpen))
        .count();
    let panic = !live.is_empty() && available * 100 < live.len() * threshold as usize;
    let was = pool.backends.iter().any(|b| b.in_panic());
    if panic != was {
        if panic {
            warn!(
                "pool {}: only {available} of {} backends available (panic threshold {threshold}%): \
                 ejected backends take traffic again",
                pool.name,
                live.len()
            );
        } else {
            info!("pool {}: out of panic", pool.name);
        }
    }
    for b in &pool.backends {
        b.set_panic(panic);
    }
}

pub(super) fn update_weights(
    pool: &Pool,
    state: &mut State,
    settings: &Resilience,
    elapsed: Duration,
    now: Instant,
) {
    let (adaptive, slow_start) = weights::applies(pool.algorithm, settings);
    if !adaptive && !slow_start {
        for b in &pool.backends {
            if b.effective_weight() != b.weight {
                b.set_effective_weight(b.weight);
            }
        }
        if !state.shares.is_empty() {
            state.shares.retain(|(name, _), _| name != &pool.name);
        }
        return;
    }
    let floor = |b: &Backend| state.backends.get(&b.addr).map_or(0, |t| t.latency.floor());
    let pool_latency = typical_latency(
        pool.backends
            .iter()
            .filter(|b| b.state() == BackendState::Up)
            .map(|b| floor(b))
            .collect(),
    );
    for b in &pool.backends {
        let Some(tracked) = state.backends.get(&b.addr) else {
            continue;
        };
        let inputs = Inputs {
            latency: Duration::from_nanos(tracked.latency.floor()),
            pool_latency,
            failure_rate: tracked.failure_rate,
            since_up: tracked.up_since.map(|t| now.saturating_duration_since(t)),
        };
        let slow = if slow_start {
            settings.slow_start
        } else {
            Duration::ZERO
        };
        let target = weights::target_share(&inputs, adaptive, slow);
        let key = (pool.name.clone(), b.addr);
        let current = state.shares.get(&key).copied().unwrap_or(target);
        let share = if slow_start && inputs.since_up.is_some_and(|s| s < settings.slow_start) {
            // The ramp is its own smoothing.
            target
        } else {
            weights::next_share(current, target, elapsed)
        };
        state.shares.insert(key, share);
        let weight = weights::effective_weight(b.weight, share);
        if b.effective_weight() != weight {
            b.set_effective_weight(weight);
        }
    }
}

/// A pool's typical latency: the lower median of its backends' estimates
/// (in ns). Lower: of two backends the upper one is the slow one itself,
/// which would then never look slow. A backend without a sample yet (0)
/// says nothing about the pool's speed.
fn typical_latency(mut latencies: Vec<u64>) -> Duration {
    latencies.retain(|&ns| ns > 0);
    latencies.sort_unstable();
    let middle = latencies.len().saturating_sub(1) / 2;
    Duration::from_nanos(latencies.get(middle).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typical_latency_is_the_lower_median_of_those_measured() {
        let ms = Duration::from_millis;
        let ns = |d: Duration| d.as_nanos() as u64;
        // Two backends: the fast one sets the pace, so the slow one shows.
        assert_eq!(typical_latency(vec![ns(ms(100)), ns(ms(1))]), ms(1));
        let three = vec![ns(ms(3)), ns(ms(100)), ns(ms(1))];
        assert_eq!(typical_latency(three), ms(3));
        // Not yet measured: not counted.
        assert_eq!(typical_latency(vec![0, ns(ms(5))]), ms(5));
        assert_eq!(typical_latency(vec![0, 0]), Duration::ZERO);
        assert_eq!(typical_latency(Vec::new()), Duration::ZERO);
    }
}
