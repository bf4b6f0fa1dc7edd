//! Effective weights: the configured weight scaled down for a backend that
//! answers slower than its pool or fails, and ramped up after it comes
//! back (slow start). Pure; the resilience thread applies it every tick.
//!
//! The configured weight is the ceiling. Weights are kept in units of
//! `1 / SCALE` of it, so a weight-1 backend can still fall to a sixteenth.

use std::time::Duration;

use crate::balance::Algorithm;
use crate::config::Resilience;

/// Fractions of a configured weight the effective weight can express.
pub const SCALE: u32 = 16;

/// The least share of its weight a backend keeps: it still gets a trickle
/// of requests, so its latency estimate can tell when it is fast again.
const FLOOR: f64 = 1.0 / SCALE as f64;

/// Latency within this much of the pool's (plus half as much again) is
/// "as fast": the weight does not chase noise.
const LATENCY_SLACK: Duration = Duration::from_millis(1);

/// How fast a lowered weight may recover: this share of full per second.
const RECOVERY_PER_SECOND: f64 = 0.25;

/// Ticks a latency floor looks back over (a second at 100 ms ticks).
const FLOOR_SAMPLES: usize = 10;

/// The lowest of a backend's latency estimates over the last ticks.
///
/// The estimate itself is peak-sensitive (right for picking: a backend
/// that turns slow is avoided from its first slow answer), but weights set
/// from it would follow every scheduling hiccup of a busy host, fast
/// backends' included. The floor keeps only slowness that lasts a second:
/// a backend slow all along is still slow, a fast one's spike is gone.
#[derive(Debug, Clone, Default)]
pub struct LatencyFloor {
    samples: [u64; FLOOR_SAMPLES],
    next: usize,
}

impl LatencyFloor {
    /// Add this tick's estimate (ns; 0: no sample yet).
    pub fn record(&mut self, ns: u64) {
        self.samples[self.next] = ns;
        self.next = (self.next + 1) % FLOOR_SAMPLES;
    }

    /// The lowest measured estimate of the window (0 if none).
    pub fn floor(&self) -> u64 {
        self.samples
            .iter()
            .copied()
            .filter(|&ns| ns > 0)
            .min()
            .unwrap_or(0)
    }
}

/// What one backend looks like this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    /// Its latency estimate.
    pub latency: Duration,
    /// The pool's typical (median) latency estimate.
    pub pool_latency: Duration,
    /// Share of its recent tries that failed (0 to 1).
    pub failure_rate: f64,
    /// Time since it came back (or was added); `None`: long ago.
    pub since_up: Option<Duration>,
}

/// The share of full weight (0 to 1) `inputs` call for, before recovery
/// is smoothed. `adaptive`: follow latency and failures; `slow_start`: ramp
/// over this time after a return (zero: off).
pub fn target_share(inputs: &Inputs, adaptive: bool, slow_start: Duration) -> f64 {
    let mut share = 1.0;
    if adaptive {
        let reference = inputs.pool_latency.mul_f64(1.5) + LATENCY_SLACK;
        if inputs.latency > reference {
            share *= reference.as_secs_f64() / inputs.latency.as_secs_f64();
        }
        share *= (1.0 - 2.0 * inputs.failure_rate).max(0.0);
    }
    if let (false, Some(since)) = (slow_start.is_zero(), inputs.since_up) {
        if since < slow_start {
            share *= since.as_secs_f64() / slow_start.as_secs_f64();
        }
    }
    share.clamp(FLOOR, 1.0)
}

/// The share after one tick of `elapsed`: a fall takes effect at once, a
/// rise at most [`RECOVERY_PER_SECOND`] (slow start ramps by itself).
pub fn next_share(current: f64, target: f64, elapsed: Duration) -> f64 {
    if target <= current {
        return target;
    }
    (current + RECOVERY_PER_SECOND * elapsed.as_secs_f64()).min(target)
}

/// Which of (adaptive weights, slow start) apply to a pool balanced by
/// `algorithm`. The latency- and load-aware algorithms weigh latency
/// themselves; a consistent-hash table rebuilt every tick would cost far
/// more than it gives.
pub fn applies(algorithm: Algorithm, settings: &Resilience) -> (bool, bool) {
    let adaptive =
        settings.adaptive_weights && matches!(algorithm, Algorithm::RoundRobin | Algorithm::Random);
    let slow_start = !settings.slow_start.is_zero() && algorithm != Algorithm::ConsistentHash;
    (adaptive, slow_start)
}

/// An effective weight in units of the configured weight, for display:
/// a pool whose weights change keeps them in sixteenths.
pub fn shown(effective: u32, algorithm: Algorithm, settings: &Resilience) -> f64 {
    match applies(algorithm, settings) {
        (false, false) => f64::from(effective),
        _ => f64::from(effective) / f64::from(SCALE),
    }
}

/// The effective weight for a configured `weight` at `share`.
pub fn effective_weight(weight: u32, share: f64) -> u32 {
    ((f64::from(weight) * f64::from(SCALE) * share).round() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn inputs(latency: Duration, pool: Duration) -> Inputs {
        Inputs {
            latency,
            pool_latency: pool,
            failure_rate: 0.0,
            since_up: None,
        }
    }

    #[test]
    fn a_backend_as_fast_as_its_pool_keeps_its_weight() {
        let i = inputs(Duration::from_micros(300), Duration::from_micros(200));
        assert_eq!(target_share(&i, true, Duration::ZERO), 1.0);
    }

    #[test]
    fn a_much_slower_backend_falls_to_the_floor() {
        let i = inputs(ms(100), Duration::from_micros(200));
        assert_eq!(target_share(&i, true, Duration::ZERO), FLOOR);
        // Off: untouched.
        assert_eq!(target_share(&i, false, Duration::ZERO), 1.0);
    }

    #[test]
    fn a_somewhat_slower_backend_loses_part_of_its_weight() {
        let share = target_share(&inputs(ms(20), ms(10)), true, Duration::ZERO);
        assert!((0.7..0.9).contains(&share), "{share}");
    }

    #[test]
    fn failures_lower_the_weight() {
        let mut i = inputs(ms(1), ms(1));
        i.failure_rate = 0.25;
        assert_eq!(target_share(&i, true, Duration::ZERO), 0.5);
        i.failure_rate = 0.9;
        assert_eq!(target_share(&i, true, Duration::ZERO), FLOOR);
    }

    #[test]
    fn slow_start_ramps_from_the_floor_to_full() {
        let ramp = Duration::from_secs(30);
        let at = |s: u64| {
            let mut i = inputs(ms(1), ms(1));
            i.since_up = Some(Duration::from_secs(s));
            target_share(&i, false, ramp)
        };
        assert_eq!(at(0), FLOOR);
        assert!((at(15) - 0.5).abs() < 1e-9);
        assert_eq!(at(30), 1.0);
        assert_eq!(at(300), 1.0);
    }

    #[test]
    fn recovery_is_gradual_a_fall_is_not() {
        let tick = ms(100);
        assert_eq!(next_share(1.0, 0.1, tick), 0.1);
        let mut share = FLOOR;
        let mut ticks = 0;
        while share < 1.0 {
            share = next_share(share, 1.0, tick);
            ticks += 1;
        }
        // A quarter a second: about four seconds from the floor.
        assert!((35..=40).contains(&ticks), "{ticks}");
    }

    #[test]
    fn the_floor_forgets_a_spike_but_not_lasting_slowness() {
        let mut fast = LatencyFloor::default();
        let mut slow = LatencyFloor::default();
        assert_eq!(fast.floor(), 0);
        for tick in 0..20 {
            // One hiccup of 50 ms among 0.2 ms estimates.
            fast.record(if tick == 15 { 50_000_000 } else { 200_000 });
            slow.record(100_000_000 + tick);
        }
        assert_eq!(fast.floor(), 200_000);
        assert_eq!(slow.floor(), 100_000_010);
        // Fast again: the floor follows within the window.
        for _ in 0..FLOOR_SAMPLES {
            slow.record(300_000);
        }
        assert_eq!(slow.floor(), 300_000);
    }

    #[test]
    fn weights_change_only_where_they_help() {
        let cli = crate::config::cli::Cli {
            backends: vec!["127.0.0.1:1".into()],
            settings: crate::config::SettingFlags {
                adaptive_weights: Some("true".into()),
                slow_start: Some("10s".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let settings = crate::config::Config::load(&cli)
            .unwrap()
            .settings
            .resilience;
        assert_eq!(applies(Algorithm::RoundRobin, &settings), (true, true));
        assert_eq!(applies(Algorithm::PeakEwma, &settings), (false, true));
        assert_eq!(
            applies(Algorithm::ConsistentHash, &settings),
            (false, false)
        );
        assert_eq!(shown(8, Algorithm::RoundRobin, &settings), 0.5);
        assert_eq!(shown(8, Algorithm::ConsistentHash, &settings), 8.0);
    }

    #[test]
    fn effective_weights_are_in_sixteenths() {
        assert_eq!(effective_weight(1, 1.0), 16);
        assert_eq!(effective_weight(3, 0.5), 24);
        assert_eq!(effective_weight(1, FLOOR), 1);
        assert_eq!(effective_weight(1, 0.0), 1);
    }
}
