//! Per-second samples of the counters, for the rates, error rates and
//! latency quantiles `/status` and the dashboard show.
//!
//! The control thread takes one [`Sample`] a second and keeps the last
//! [`KEPT`]; a rate is the difference of two samples over the time between
//! them, so nothing on the request path measures time for it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::snapshot::Snapshot;
use crate::state::backend::BackendStats;
use crate::state::metrics::HistogramCounts;
use crate::state::outcome::WorkerMetrics;

/// Samples kept: five minutes at one a second (the dashboard's sparklines).
pub const KEPT: usize = 301;

/// The window p50, p99 and error rates are taken over, in samples.
const QUANTILE_WINDOW: usize = 10;

/// One backend's counters at one moment, summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendTotals {
    /// Tries: responses relayed and failures.
    pub tries: u64,
    /// Failed tries and 5xx responses.
    pub errors: u64,
    /// Whole-try latency.
    pub latency: HistogramCounts,
}

impl BackendTotals {
    /// Sum every worker's counters of `stats`.
    pub fn read(stats: &BackendStats) -> Self {
        let mut totals = Self::default();
        for c in stats.all_counters() {
            let responses: u64 = c.responses.iter().map(|r| r.get()).sum();
            let failures: u64 = c.failures.iter().map(|f| f.get()).sum();
            totals.tries += responses + failures;
            totals.errors += failures + c.responses[4].get();
            totals.latency.add(&c.latency.read());
        }
        totals
    }
}

/// Every counter `/status` needs, at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// Per backend address.
    pub backends: HashMap<SocketAddr, BackendTotals>,
    /// Responses to clients (all workers).
    pub requests: u64,
    /// 5xx responses to clients.
    pub errors: u64,
}

impl Sample {
    /// Read the counters of every backend of `snapshot` and every worker.
    pub fn take<'a>(
        at: Instant,
        snapshot: &Snapshot,
        workers: impl Iterator<Item = &'a WorkerMetrics>,
    ) -> Self {
        let mut backends = HashMap::new();
        for pool in &snapshot.pools {
            for b in &pool.backends {
                backends
                    .entry(b.addr)
                    .or_insert_with(|| BackendTotals::read(b.stats()));
            }
        }
        let (mut requests, mut errors) = (0, 0);
        for w in workers {
            requests += w.responses.iter().map(|r| r.get()).sum::<u64>();
            errors += w.responses[4].get();
        }
        Self {
            at,
            backends,
            requests,
            errors,
        }
    }
}

/// What `/status` says of a backend over recent samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendView {
    /// Tries per second over the last second.
    pub requests_per_second: f64,
    /// Errors ÷ tries over the last ten seconds (0 without tries).
    pub error_rate: f64,
    /// Latency quantiles over the last ten seconds, in ms.
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
    /// Tries per second, one value a second, oldest first.
    pub history: Vec<f64>,
}

/// The last [`KEPT`] samples.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

fn per_second(newer: u64, older: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        newer.saturating_sub(older) as f64 / seconds
    }
}

impl History {
    /// Keep `sample`, dropping the oldest beyond [`KEPT`].
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The newest sample and the one `back` samples before it.
    fn pair(&self, back: usize) -> Option<(&Sample, &Sample)> {
        let n = self.samples.len();
        if n < 2 {
            return None;
        }
        Some((&self.samples[n - 1], &self.samples[n - 1 - back.min(n - 1)]))
    }

    /// Client requests per second and the 5xx share, over the last second
    /// and ten seconds.
    pub fn totals(&self) -> (f64, f64) {
        let rate = self.pair(1).map_or(0.0, |(new, old)| {
            per_second(new.requests, old.requests, (new.at - old.at).as_secs_f64())
        });
        let error_rate = self.pair(QUANTILE_WINDOW).map_or(0.0, |(new, old)| {
            let requests = new.requests.saturating_sub(old.requests);
            if requests == 0 {
                0.0
            } else {
                new.errors.saturating_sub(old.errors) as f64 / requests as f64
            }
        });
        (rate, error_rate)
    }

    /// What to show for the backend at `addr`.
    pub fn backend(&self, addr: SocketAddr) -> BackendView {
        let get = |s: &Sample| s.backends.get(&addr).copied().unwrap_or_default();
        let mut view = BackendView::default();
        if let Some((new, old)) = self.pair(1) {
            let seconds = (new.at - old.at).as_secs_f64();
            view.requests_per_second = per_second(get(new).tries, get(old).tries, seconds);
        }
        if let Some((new, old)) = self.pair(QUANTILE_WINDOW) {
            let (new_t, old_t) = (get(new), get(old));
            let tries = new_t.tries.saturating_sub(old_t.tries);
            if tries > 0 {
                view.error_rate = new_t.errors.saturating_sub(old_t.errors) as f64 / tries as f64;
            }
            let window = new_t.latency.since(&old_t.latency);
            view.p50_ms = window.quantile_ms(0.5);
            view.p99_ms = window.quantile_ms(0.99);
        }
        view.history = self
            .samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(old, new)| {
                per_second(
                    get(new).tries,
                    get(old).tries,
                    (new.at - old.at).as_secs_f64(),
                )
            })
            .collect();
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(at: Instant, tries: u64, errors: u64) -> Sample {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut backends = HashMap::new();
        backends.insert(
            addr,
            BackendTotals {
                tries,
                errors,
                latency: HistogramCounts::default(),
            },
        );
        Sample {
            at,
            backends,
            requests: tries,
            errors,
        }
    }

    #[test]
    fn rates_come_from_sample_differences() {
        let start = Instant::now();
        let mut h = History::default();
        assert_eq!(h.totals(), (0.0, 0.0));
        h.push(sample(start, 0, 0));
        h.push(sample(start + Duration::from_secs(1), 100, 0));
        h.push(sample(start + Duration::from_secs(2), 300, 10));
        let view = h.backend("127.0.0.1:1".parse().unwrap());
        assert_eq!(view.requests_per_second, 200.0);
        assert_eq!(view.history, vec![100.0, 200.0]);
        assert!((view.error_rate - 10.0 / 300.0).abs() < 1e-9);
        assert_eq!(h.totals().0, 200.0);
        // An unknown backend reads as idle.
        assert_eq!(
            h.backend("127.0.0.1:2".parse().unwrap())
                .requests_per_second,
            0.0
        );
    }

    #[test]
    fn only_the_last_five_minutes_are_kept() {
        let start = Instant::now();
        let mut h = History::default();
        for i in 0..400 {
            h.push(sample(start + Duration::from_secs(i), i, 0));
        }
        assert_eq!(
            h.backend("127.0.0.1:1".parse().unwrap()).history.len(),
            KEPT - 1
        );
    }
}
