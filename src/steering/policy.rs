//! How new connections are split between workers: by how much of its core
//! each worker actually gets.
//!
//! The scheduler counts, per thread, the time it ran and the time it was
//! ready to run but waited for its core (`schedstat`). A worker's *running
//! share* — ran ÷ (ran + waited) — is near 1 on a core of its own and
//! falls when other work crowds its core: a backend, a sidecar, the load
//! generator of a benchmark. A crowded worker answers late, and everything
//! it runs is taken from the process it shares the core with. Giving it
//! fewer new connections moves work to cores that have room.
//!
//! Measured on a 2-core machine with wrk and the backend on core 0
//! (`perf/README.md`): a worker on core 0 ran about a third of the time it
//! was ready, whether it had half of the connections or a thirtieth, and
//! every share it kept cost the whole process requests per second and p99
//! latency: half the connections 18 % of the requests per second of one
//! worker alone, a thirtieth 10 %, none 1 %. So the rule is steep, and it
//! compares each worker with the best-placed one rather than with an
//! absolute: a worker running half the share of the best or less gets no
//! new connections, one running 90 % of it or more gets a full share, and a
//! straight line joins the two. Workers crowded alike are split evenly, and
//! there is always somewhere for a connection to go.
//!
//! A reading is only as good as the time it covers. A window in which a
//! worker was ready for a tenth of it or more is a full reading
//! ([`FULL_EVIDENCE`]); below that a reading counts with the square of its
//! ready time. The few short timer wake-ups of an idle worker always wait
//! their turn on a busy core, so they read as crowded even where a busy
//! worker would get its fair share: they should count for next to nothing.
//! What a window does not tell, it forgets: the estimate drifts back toward
//! "a core of its own" by the missing part ([`FORGET_HALF_LIFE`]). So an
//! idle worker is tried again after a few seconds, and a core that is
//! still crowded takes its share away again within a few tenths of a
//! second.

/// Weight of a worker running at least [`UNCROWDED`] of the best share.
pub const FULL_WEIGHT: u32 = 1024;
/// Fraction of the best running share at and below which a worker gets no
/// new connections.
pub const CROWDED: f64 = 0.5;
/// Fraction of the best running share from which a worker gets a full
/// weight.
pub const UNCROWDED: f64 = 0.9;
/// How far one full reading moves the smoothed running share toward
/// itself: one odd window (a burst, a page fault storm) moves it halfway.
const SMOOTHING: f64 = 0.5;
/// A window in which a worker was ready for this fraction of it or more is
/// a full reading; below it, a reading's weight falls with the square.
pub const FULL_EVIDENCE: f64 = 0.1;
/// How fast an idle worker's estimate drifts back to 1: it halves its
/// distance from 1 every this many seconds.
pub const FORGET_HALF_LIFE: f64 = 5.0;

/// A thread's scheduler counters, cumulative since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedSample {
    /// Nanoseconds it ran.
    pub ran_ns: u64,
    /// Nanoseconds it was ready to run but waited for a core.
    pub waited_ns: u64,
}

impl SchedSample {
    /// Parse `/proc/<pid>/task/<tid>/schedstat`: "ran waited timeslices".
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
        let ran_ns = fields.next()?.ok()?;
        let waited_ns = fields.next()?.ok()?;
        Some(Self { ran_ns, waited_ns })
    }
}

/// The weight of a worker with `running_share`, when the best-placed
/// worker's is `best`.
pub fn weight(running_share: f64, best: f64) -> u32 {
    if best <= 0.0 {
        return FULL_WEIGHT;
    }
    let relative = running_share / best;
    let fraction = ((relative - CROWDED) / (UNCROWDED - CROWDED)).clamp(0.0, 1.0);
    (fraction * f64::from(FULL_WEIGHT)).round() as u32
}

/// Each worker's smoothed running share, from one sample per window.
#[derive(Debug)]
pub struct Policy {
    last: Vec<Option<SchedSample>>,
    running_share: Vec<f64>,
}

impl Policy {
    /// `workers` workers, each assumed to have its core to itself until
    /// measured otherwise.
    pub fn new(workers: usize) -> Self {
        Self {
            last: vec![None; workers],
            running_share: vec![1.0; workers],
        }
    }

    /// Take each worker's counters at the end of a window of `window_ns`
    /// (`None`: could not be read this time).
    pub fn observe(&mut self, samples: &[Option<SchedSample>], window_ns: u64) {
        let seconds = window_ns as f64 / 1e9;
        let forget = 1.0 - 0.5f64.powf(seconds / FORGET_HALF_LIFE);
        for (i, sample) in samples.iter().enumerate().take(self.last.len()) {
            let previous = std::mem::replace(&mut self.last[i], *sample);
            let (Some(now), Some(before)) = (sample, previous) else {
                continue;
            };
            let ran = now.ran_ns.saturating_sub(before.ran_ns) as f64;
            let waited = now.waited_ns.saturating_sub(before.waited_ns) as f64;
            let ready = ran + waited;
            let evidence = (ready / (FULL_EVIDENCE * window_ns as f64))
                .min(1.0)
                .powi(2);
            let share = &mut self.running_share[i];
            if ready > 0.0 {
                *share += SMOOTHING * evidence * (ran / ready - *share);
            }
            *share += (1.0 - evidence) * forget * (1.0 - *share);
        }
    }

    /// Worker `i`'s smoothed running share.
    pub fn running_share(&self, i: usize) -> f64 {
        self.running_share[i]
    }

    /// The weight of each worker's share of new connections.
    pub fn weights(&self) -> Vec<u32> {
        let best = self.running_share.iter().copied().fold(0.0, f64::max);
        self.running_share
            .iter()
            .map(|&share| weight(share, best))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 100_000_000;

    fn sample(ran_ms: f64, waited_ms: f64) -> Option<SchedSample> {
        Some(SchedSample {
            ran_ns: (ran_ms * 1e6).round() as u64,
            waited_ns: (waited_ms * 1e6).round() as u64,
        })
    }

    #[test]
    fn schedstat_is_parsed() {
        assert_eq!(
            SchedSample::parse("123 456 7\n"),
            Some(SchedSample {
                ran_ns: 123,
                waited_ns: 456
            })
        );
        assert_eq!(SchedSample::parse("123\n"), None);
        assert_eq!(SchedSample::parse("x 1 2"), None);
    }

    #[test]
    fn weight_is_full_near_the_best_share_and_none_at_half_of_it() {
        assert_eq!(weight(1.0, 1.0), FULL_WEIGHT);
        assert_eq!(weight(UNCROWDED, 1.0), FULL_WEIGHT);
        assert_eq!(weight(0.7, 1.0), FULL_WEIGHT / 2);
        assert_eq!(weight(CROWDED, 1.0), 0);
        assert_eq!(weight(0.0, 1.0), 0);
        // Relative to the best: 0.35 of a best 0.7 is half of it.
        assert_eq!(weight(0.35, 0.7), 0);
        assert_eq!(weight(0.7, 0.7), FULL_WEIGHT);
    }

    #[test]
    fn unmeasured_workers_share_evenly() {
        let policy = Policy::new(3);
        assert_eq!(policy.weights(), vec![FULL_WEIGHT; 3]);
    }

    /// Feed `windows` windows in which each worker ran and waited the
    /// given milliseconds, continuing from the counters in `totals`.
    fn run(
        policy: &mut Policy,
        totals: &mut [(f64, f64)],
        per_window: &[(f64, f64)],
        windows: u32,
    ) {
        for _ in 0..windows {
            for (total, (ran, waited)) in totals.iter_mut().zip(per_window) {
                total.0 += ran;
                total.1 += waited;
            }
            let samples: Vec<_> = totals.iter().map(|&(r, w)| sample(r, w)).collect();
            policy.observe(&samples, WINDOW);
        }
    }

    fn start(workers: usize) -> (Policy, Vec<(f64, f64)>) {
        let mut policy = Policy::new(workers);
        policy.observe(&vec![sample(0.0, 0.0); workers], WINDOW);
        (policy, vec![(0.0, 0.0); workers])
    }

    #[test]
    fn a_worker_waiting_for_its_core_loses_its_share_and_regains_it() {
        let (mut policy, mut totals) = start(2);
        // Worker 0 runs a third of the time it is ready; worker 1 runs alone.
        run(&mut policy, &mut totals, &[(30.0, 60.0), (90.0, 0.0)], 6);
        assert!(policy.running_share(0) < 0.4);
        assert_eq!(policy.weights(), vec![0, FULL_WEIGHT]);
        // Its core frees up: it runs whenever it is ready.
        run(&mut policy, &mut totals, &[(20.0, 0.0), (90.0, 0.0)], 6);
        assert_eq!(policy.weights(), vec![FULL_WEIGHT, FULL_WEIGHT]);
    }

    #[test]
    fn workers_crowded_alike_share_evenly() {
        let (mut policy, mut totals) = start(2);
        run(&mut policy, &mut totals, &[(40.0, 60.0), (40.0, 60.0)], 8);
        assert!(policy.running_share(0) < CROWDED);
        assert_eq!(policy.weights(), vec![FULL_WEIGHT, FULL_WEIGHT]);
        // One core gets much worse than the other: it loses its share.
        run(&mut policy, &mut totals, &[(40.0, 60.0), (15.0, 85.0)], 8);
        assert_eq!(policy.weights(), vec![FULL_WEIGHT, 0]);
    }

    #[test]
    fn one_crowded_window_moves_the_estimate_only_halfway() {
        let (mut policy, _) = start(1);
        policy.observe(&[sample(20.0, 60.0)], WINDOW);
        assert!((policy.running_share(0) - 0.625).abs() < 1e-9);
    }

    #[test]
    fn the_wakeups_of_an_idle_worker_on_a_busy_core_do_not_mark_it_crowded() {
        let (mut policy, mut totals) = start(2);
        // Worker 0 has no connections; its timer wake-ups (0.15 ms a window)
        // wait for the busy core (0.25 ms), as measured with wrk on its core. Worker 1 serves everything.
        run(&mut policy, &mut totals, &[(0.15, 0.25), (90.0, 0.0)], 100);
        assert!(policy.running_share(0) > 0.9, "{}", policy.running_share(0));
        assert_eq!(policy.weights(), vec![FULL_WEIGHT, FULL_WEIGHT]);
    }

    #[test]
    fn an_idle_worker_is_tried_again_after_a_few_seconds() {
        let (mut policy, mut totals) = start(2);
        run(&mut policy, &mut totals, &[(20.0, 80.0), (90.0, 0.0)], 8);
        assert_eq!(policy.weights(), vec![0, FULL_WEIGHT]);
        let crowded = policy.running_share(0);
        // Idle, it tells nothing about its core: for one half-life the
        // estimate halves its distance from 1.
        let windows = (FORGET_HALF_LIFE * 1e9 / WINDOW as f64) as u32;
        run(
            &mut policy,
            &mut totals,
            &[(0.0, 0.0), (90.0, 0.0)],
            windows,
        );
        let expected = 1.0 - (1.0 - crowded) / 2.0;
        assert!((policy.running_share(0) - expected).abs() < 1e-6);
        // Idle long enough, it gets a full share again.
        run(
            &mut policy,
            &mut totals,
            &[(0.0, 0.0), (90.0, 0.0)],
            4 * windows,
        );
        assert_eq!(policy.weights(), vec![FULL_WEIGHT, FULL_WEIGHT]);
    }

    #[test]
    fn no_change_is_taken_across_an_unreadable_sample() {
        let mut policy = Policy::new(1);
        policy.observe(&[sample(0.0, 0.0)], WINDOW);
        policy.observe(&[sample(80.0, 0.0)], WINDOW);
        policy.observe(&[None], WINDOW);
        // 1000 ms waited, but over an unknown span: not a reading.
        policy.observe(&[sample(160.0, 1000.0)], WINDOW);
        assert_eq!(policy.running_share(0), 1.0);
    }
}
