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
//! worker alone, a thirtieth 10 %, none 1 %. So the rule is steep: a worker
//! running half of its ready time or less gets no new connections, one
//! running 90 % of it or more gets a full share, and a straight line joins
//! the two.
//!
//! A worker without work says nothing about its core, so while it is idle
//! its estimate drifts back toward "a core of its own" ([`FORGET_HALF_LIFE`]):
//! it is tried again after a few seconds, and a core that is still crowded
//! takes its share away again within a second. Only the ratio of the
//! weights matters: workers all crowded alike all weigh 0, which is an even
//! split again.

/// Weight of a worker running [`UNCROWDED`] of its ready time or more.
pub const FULL_WEIGHT: u32 = 1024;
/// Running share at and below which a worker gets no new connections.
pub const CROWDED: f64 = 0.5;
/// Running share from which a worker gets a full weight.
pub const UNCROWDED: f64 = 0.9;
/// How far one window moves the smoothed running share toward its own
/// reading: one odd window (a burst, a page fault storm) moves it halfway.
const SMOOTHING: f64 = 0.5;
/// A window in which a worker was ready for less than this fraction of it
/// says too little about its core: its estimate drifts toward 1 instead.
const MIN_READY: f64 = 0.005;
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

/// The weight of a worker with this running share.
pub fn weight(running_share: f64) -> u32 {
    let fraction = ((running_share - CROWDED) / (UNCROWDED - CROWDED)).clamp(0.0, 1.0);
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
        for (i, sample) in samples.iter().enumerate().take(self.last.len()) {
            let previous = std::mem::replace(&mut self.last[i], *sample);
            let (Some(now), Some(before)) = (sample, previous) else {
                continue;
            };
            let ran = now.ran_ns.saturating_sub(before.ran_ns) as f64;
            let waited = now.waited_ns.saturating_sub(before.waited_ns) as f64;
            let ready = ran + waited;
            let share = &mut self.running_share[i];
            if ready < MIN_READY * window_ns as f64 {
                let seconds = window_ns as f64 / 1e9;
                let forget = 1.0 - 0.5f64.powf(seconds / FORGET_HALF_LIFE);
                *share += forget * (1.0 - *share);
            } else {
                *share += SMOOTHING * (ran / ready - *share);
            }
        }
    }

    /// Worker `i`'s smoothed running share.
    pub fn running_share(&self, i: usize) -> f64 {
        self.running_share[i]
    }

    /// The weight of each worker's share of new connections.
    pub fn weights(&self) -> Vec<u32> {
        self.running_share.iter().map(|&s| weight(s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 250_000_000;

    fn sample(ran_ms: u64, waited_ms: u64) -> Option<SchedSample> {
        Some(SchedSample {
            ran_ns: ran_ms * 1_000_000,
            waited_ns: waited_ms * 1_000_000,
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
    fn weight_is_full_when_uncrowded_and_none_when_crowded() {
        assert_eq!(weight(1.0), FULL_WEIGHT);
        assert_eq!(weight(UNCROWDED), FULL_WEIGHT);
        assert_eq!(weight(0.7), FULL_WEIGHT / 2);
        assert_eq!(weight(CROWDED), 0);
        assert_eq!(weight(0.0), 0);
    }

    #[test]
    fn unmeasured_workers_share_evenly() {
        let policy = Policy::new(3);
        assert_eq!(policy.weights(), vec![FULL_WEIGHT; 3]);
    }

    #[test]
    fn a_worker_waiting_for_its_core_loses_its_share_and_regains_it() {
        let mut policy = Policy::new(2);
        policy.observe(&[sample(0, 0), sample(0, 0)], WINDOW);
        // Worker 0 ran 70 ms and waited 140 ms; worker 1 ran alone.
        let (mut ran0, mut waited0, mut ran1) = (0, 0, 0);
        for _ in 0..6 {
            ran0 += 70;
            waited0 += 140;
            ran1 += 200;
            policy.observe(&[sample(ran0, waited0), sample(ran1, 0)], WINDOW);
        }
        assert!(policy.running_share(0) < 0.4);
        assert_eq!(policy.weights(), vec![0, FULL_WEIGHT]);
        // Its core frees up: it runs whenever it is ready.
        for _ in 0..6 {
            ran0 += 10;
            ran1 += 200;
            policy.observe(&[sample(ran0, waited0), sample(ran1, 0)], WINDOW);
        }
        assert_eq!(policy.weights(), vec![FULL_WEIGHT, FULL_WEIGHT]);
    }

    #[test]
    fn one_crowded_window_moves_the_estimate_only_halfway() {
        let mut policy = Policy::new(1);
        policy.observe(&[sample(0, 0)], WINDOW);
        policy.observe(&[sample(50, 150)], WINDOW);
        assert!((policy.running_share(0) - 0.625).abs() < 1e-9);
    }

    #[test]
    fn an_idle_worker_is_tried_again_after_a_few_seconds() {
        let mut policy = Policy::new(1);
        policy.observe(&[sample(0, 0)], WINDOW);
        for i in 1..=8 {
            policy.observe(&[sample(20 * i, 180 * i)], WINDOW);
        }
        assert_eq!(policy.weights(), vec![0]);
        let crowded = policy.running_share(0);
        // 1 ms of 250 is too little to judge the core by: for one half-life
        // the estimate halves its distance from 1.
        let windows = (FORGET_HALF_LIFE / 0.25) as u64;
        for i in 1..=windows {
            policy.observe(&[sample(160, 1440 + i)], WINDOW);
        }
        let expected = 1.0 - (1.0 - crowded) / 2.0;
        assert!((policy.running_share(0) - expected).abs() < 1e-6);
        // Idle long enough, it gets a full share again.
        for i in 1..=4 * windows {
            policy.observe(&[sample(160, 1460 + i)], WINDOW);
        }
        assert_eq!(policy.weights(), vec![FULL_WEIGHT]);
    }

    #[test]
    fn no_change_is_taken_across_an_unreadable_sample() {
        let mut policy = Policy::new(1);
        policy.observe(&[sample(0, 0)], WINDOW);
        policy.observe(&[sample(200, 0)], WINDOW);
        policy.observe(&[None], WINDOW);
        // 1000 ms waited, but over an unknown span: not a reading.
        policy.observe(&[sample(400, 1000)], WINDOW);
        assert_eq!(policy.running_share(0), 1.0);
    }
}
