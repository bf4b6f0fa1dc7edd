//! How often the `corelb-health` tick walks every backend.
//!
//! The walk costs time in proportion to the number of backends (about
//! 5 ms for 10 000), so doing it every [`super::thread::TICK`] kept a
//! tenth of a core busy on an idle process. Whether anything can have
//! changed is cheap to know: new traffic shows in the workers' counters,
//! a reload or admin change in the snapshot's generation, and a backend
//! still moving (ejected, probed, failing, ramping up) in what the last
//! walk saw. When none of these holds, walking once every [`IDLE_WALK`]
//! is enough: it keeps the time-based parts (weight smoothing, latency
//! decay) going at a coarser step.

use std::time::{Duration, Instant};

/// The longest time between two walks.
pub const IDLE_WALK: Duration = Duration::from_secs(5);

/// What the last walk saw. See the module docs.
#[derive(Debug, Default)]
pub(super) struct Pace {
    last_walk: Option<Instant>,
    generation: u64,
    activity: u64,
    settled: bool,
}

impl Pace {
    /// Should this tick walk every backend? `generation` is the
    /// snapshot's, `activity` any sum of worker counters that moves with
    /// traffic.
    pub(super) fn due(&mut self, generation: u64, activity: u64, now: Instant) -> bool {
        let due = !self.settled
            || generation != self.generation
            || activity != self.activity
            || self
                .last_walk
                .is_none_or(|t| now.saturating_duration_since(t) >= IDLE_WALK);
        if due {
            self.last_walk = Some(now);
            self.generation = generation;
            self.activity = activity;
        }
        due
    }

    /// After a walk: true if every backend was at rest (up, not probed,
    /// not failing, not ramping up).
    pub(super) fn walked(&mut self, settled: bool) {
        self.settled = settled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_on_change_and_at_least_every_idle_walk() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut pace = Pace::default();
        assert!(pace.due(1, 0, ms(0)), "the first tick walks");
        pace.walked(true);
        assert!(!pace.due(1, 0, ms(100)), "nothing changed");
        assert!(pace.due(1, 5, ms(200)), "traffic");
        assert!(!pace.due(1, 5, ms(300)));
        assert!(pace.due(2, 5, ms(400)), "a new generation");
        assert!(!pace.due(2, 5, ms(5300)));
        assert!(pace.due(2, 5, ms(5400)), "IDLE_WALK since the last walk");
        pace.walked(false);
        assert!(pace.due(2, 5, ms(5500)), "a backend still moving");
    }
}
