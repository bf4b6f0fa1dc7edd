//! Peak-sensitive, time-decaying moving average of response latency.
//!
//! The rules (after Finagle's and Linkerd's peak EWMA):
//! - a sample above the current estimate replaces it at once, so a backend
//!   that turns slow is avoided from its first slow response;
//! - otherwise the estimate moves toward the sample by `1 - e^(-Δt/τ)`,
//!   where Δt is the time since the last update: the weight of a sample
//!   depends on time, not on request rate;
//! - when read, the estimate decays toward zero with the time since its
//!   last sample. A backend avoided for being slow gets no new samples; the
//!   decay makes it cheap again after a few τ, so it is tried again instead
//!   of being starved forever.
//!
//! Pure: callers pass `now` (nanoseconds on a monotonic clock, see
//! [`now_ns`]).

use std::sync::OnceLock;
use std::time::Instant;

/// τ: the time over which old latency loses ~63% of its weight.
pub const DECAY_NS: f64 = 1_000_000_000.0;

/// `e^(-Δt/τ)` for an update `elapsed_ns` after the last one.
fn decay_factor(elapsed_ns: u64) -> f64 {
    (-(elapsed_ns as f64) / DECAY_NS).exp()
}

/// The estimate `value_ns`, last updated at `stamp_ns`, as seen at `now_ns`.
pub fn decayed(value_ns: u64, stamp_ns: u64, now_ns: u64) -> u64 {
    if value_ns == 0 {
        return 0;
    }
    (value_ns as f64 * decay_factor(now_ns.saturating_sub(stamp_ns))) as u64
}

/// The estimate after observing `sample_ns` at `now_ns`.
pub fn observe(value_ns: u64, stamp_ns: u64, sample_ns: u64, now_ns: u64) -> u64 {
    if value_ns == 0 || sample_ns >= value_ns {
        return sample_ns.max(1);
    }
    let weight_old = decay_factor(now_ns.saturating_sub(stamp_ns));
    let blended = value_ns as f64 * weight_old + sample_ns as f64 * (1.0 - weight_old);
    (blended as u64).max(1)
}

/// Nanoseconds since the first call in this process, on the monotonic clock.
pub fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// [`now_ns`] for an instant already read, so a caller that also needs the
/// `Instant` reads the clock once.
pub fn ns_at(instant: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| instant);
    u64::try_from(instant.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    #[test]
    fn first_sample_and_peaks_are_taken_whole() {
        assert_eq!(observe(0, 0, 5 * MS, 0), 5 * MS);
        assert_eq!(observe(5 * MS, 0, 50 * MS, 1), 50 * MS);
    }

    #[test]
    fn lower_samples_pull_down_by_elapsed_time() {
        // Right after the last update a lower sample barely moves it.
        let soon = observe(100 * MS, 0, 10 * MS, 1000);
        assert!(soon > 99 * MS && soon < 100 * MS, "{soon}");
        // One τ later it moves ~63% of the way.
        let later = observe(100 * MS, 0, 10 * MS, S);
        assert!((42 * MS..=44 * MS).contains(&later), "{later}");
    }

    #[test]
    fn estimate_decays_while_no_samples_arrive() {
        assert_eq!(decayed(100 * MS, 0, 0), 100 * MS);
        let one_tau = decayed(100 * MS, 0, S);
        assert!((36 * MS..=37 * MS).contains(&one_tau), "{one_tau}");
        assert!(decayed(100 * MS, 0, 10 * S) < MS / 100);
        assert_eq!(decayed(0, 0, S), 0);
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
