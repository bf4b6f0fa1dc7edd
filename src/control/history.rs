//! Per-second samples of the counters, for the rates, error rates and
//! latency quantiles `/status` and the dashboard show.
//!
//! The control thread records the counters once a second; a rate is the
//! difference of two readings over the time between them, so nothing on
//! the request path measures time for it.
//!
//! What is kept is what the dashboard draws, and no more, so memory grows
//! by a fixed amount per backend (about 2.5 KiB), not with time:
//!
//! - per backend, the last [`WINDOW`] + 1 readings of its counters (the
//!   one-second rate, and the ten-second error rate and latency quantiles),
//!   and its tries per second over the last [`SPARKLINE`] seconds as `f32`
//!   (its sparkline);
//! - for the whole process, the last [`WINDOW`] + 1 readings of the client
//!   counters and [`SPARKLINE`] seconds of tries per second summed over
//!   every backend (the totals chart).
//!
//! A backend that leaves the configuration leaves the history at the next
//! reading, and the map gives its memory back.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::snapshot::Snapshot;
use crate::state::backend::BackendStats;
use crate::state::metrics::HistogramCounts;
use crate::state::outcome::WorkerMetrics;

/// Seconds of per-second rates kept: the dashboard's sparklines span five
/// minutes.
pub const SPARKLINE: usize = 300;

/// The window p50, p99 and error rates are taken over, in readings.
const WINDOW: usize = 10;

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

/// What `/status` says of a backend over recent readings.
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

/// A queue that keeps its newest `cap` values.
fn push_capped<T>(queue: &mut VecDeque<T>, cap: usize, value: T) {
    if queue.len() == cap {
        queue.pop_front();
    }
    queue.push_back(value);
}

/// The newest value and the one `back` before it (or the oldest kept).
fn newest_and_back<T>(queue: &VecDeque<T>, back: usize) -> Option<(&T, &T)> {
    let n = queue.len();
    (n >= 2).then(|| (&queue[n - 1], &queue[n - 1 - back.min(n - 1)]))
}

fn per_second(newer: u64, older: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        newer.saturating_sub(older) as f64 / seconds
    }
}

/// One backend's readings.
#[derive(Debug, Default)]
struct Track {
    /// The last `WINDOW + 1` readings, with when they were taken.
    recent: VecDeque<(Instant, BackendTotals)>,
    /// Tries per second, oldest first, at most [`SPARKLINE`].
    rates: VecDeque<f32>,
    /// The reading this track was last updated by.
    stamp: u64,
}

impl Track {
    /// Add a reading; returns the tries per second since the previous one.
    fn record(&mut self, at: Instant, totals: BackendTotals) -> f64 {
        let rate = self
            .recent
            .back()
            .map(|(then, old)| per_second(totals.tries, old.tries, (at - *then).as_secs_f64()));
        push_capped(&mut self.recent, WINDOW + 1, (at, totals));
        if let Some(rate) = rate {
            push_capped(&mut self.rates, SPARKLINE, rate as f32);
        }
        rate.unwrap_or(0.0)
    }

    /// Add a reading known to equal the last one (nothing moved).
    fn repeat(&mut self, at: Instant) {
        if let Some(&(_, last)) = self.recent.back() {
            self.record(at, last);
        }
    }

    fn view(&self) -> BackendView {
        let mut view = BackendView {
            requests_per_second: self.rates.back().map_or(0.0, |&r| f64::from(r)),
            history: self.rates.iter().map(|&r| f64::from(r)).collect(),
            ..BackendView::default()
        };
        if let Some(((_, new), (_, old))) = newest_and_back(&self.recent, WINDOW) {
            let tries = new.tries.saturating_sub(old.tries);
            if tries > 0 {
                view.error_rate = new.errors.saturating_sub(old.errors) as f64 / tries as f64;
            }
            let window = new.latency.since(&old.latency);
            view.p50_ms = window.quantile_ms(0.5);
            view.p99_ms = window.quantile_ms(0.99);
        }
        view
    }
}

/// The client side's counters at one moment.
#[derive(Debug, Clone, Copy)]
struct ClientTotals {
    at: Instant,
    /// Responses to clients (all workers).
    requests: u64,
    /// 5xx responses to clients.
    errors: u64,
}

/// Recent readings of every backend and of the clients. See the module docs.
#[derive(Debug, Default)]
pub struct History {
    clients: VecDeque<ClientTotals>,
    /// Tries per second summed over every backend, oldest first.
    total_rates: VecDeque<f32>,
    backends: HashMap<SocketAddr, Track>,
    /// Readings taken so far.
    readings: u64,
    /// The snapshot generation and worker activity of the last reading
    /// that read every backend.
    read_at: Option<(u64, u64)>,
}

impl History {
    /// Read the counters of every backend of `snapshot` and every worker.
    /// `activity` is [`crate::shared::Shared::activity`], read before the
    /// call: when it and the generation are what they were at the last
    /// reading, no backend counter moved and none is read (an idle process
    /// with many backends stays cheap). Returns how many backends left the
    /// history (no longer configured).
    pub fn record<'a>(
        &mut self,
        at: Instant,
        snapshot: &Snapshot,
        activity: u64,
        workers: impl Iterator<Item = &'a WorkerMetrics>,
    ) -> usize {
        self.readings += 1;
        let stamp = self.readings;
        let quiet = self.read_at == Some((snapshot.generation, activity));
        self.read_at = Some((snapshot.generation, activity));
        let mut sum = 0.0;
        if quiet {
            for track in self.backends.values_mut() {
                track.stamp = stamp;
                track.repeat(at);
            }
        }
        for pool in snapshot.pools.iter().filter(|_| !quiet) {
            for b in &pool.backends {
                let track = self.backends.entry(b.addr).or_default();
                // A backend in several pools is read once.
                if track.stamp != stamp {
                    track.stamp = stamp;
                    sum += track.record(at, BackendTotals::read(b.stats()));
                }
            }
        }
        if !self.clients.is_empty() {
            push_capped(&mut self.total_rates, SPARKLINE, sum as f32);
        }
        let before = self.backends.len();
        self.backends.retain(|_, t| t.stamp == stamp);
        let gone = before - self.backends.len();
        if gone > 0 {
            self.backends.shrink_to_fit();
        }
        let (mut requests, mut errors) = (0, 0);
        for w in workers {
            requests += w.responses.iter().map(|r| r.get()).sum::<u64>();
            errors += w.responses[4].get();
        }
        let clients = ClientTotals {
            at,
            requests,
            errors,
        };
        push_capped(&mut self.clients, WINDOW + 1, clients);
        gone
    }

    /// Client requests per second and the 5xx share, over the last second
    /// and ten seconds.
    pub fn totals(&self) -> (f64, f64) {
        let rate = newest_and_back(&self.clients, 1).map_or(0.0, |(new, old)| {
            per_second(new.requests, old.requests, (new.at - old.at).as_secs_f64())
        });
        let error_rate = newest_and_back(&self.clients, WINDOW).map_or(0.0, |(new, old)| {
            let requests = new.requests.saturating_sub(old.requests);
            if requests == 0 {
                0.0
            } else {
                new.errors.saturating_sub(old.errors) as f64 / requests as f64
            }
        });
        (rate, error_rate)
    }

    /// Tries per second over every backend, one value a second, oldest
    /// first (the dashboard's totals chart).
    pub fn total_history(&self) -> Vec<f64> {
        self.total_rates.iter().map(|&r| f64::from(r)).collect()
    }

    /// The backend at `addr`'s tries per second over the last second.
    pub fn backend_rate(&self, addr: SocketAddr) -> f64 {
        self.backends
            .get(&addr)
            .and_then(|t| t.rates.back())
            .map_or(0.0, |&r| f64::from(r))
    }

    /// What to show for the backend at `addr` (idle if unknown).
    pub fn backend(&self, addr: SocketAddr) -> BackendView {
        self.backends
            .get(&addr)
            .map_or_else(BackendView::default, Track::view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn totals(tries: u64, errors: u64) -> BackendTotals {
        BackendTotals {
            tries,
            errors,
            latency: HistogramCounts::default(),
        }
    }

    #[test]
    fn rates_come_from_reading_differences() {
        let start = Instant::now();
        let mut t = Track::default();
        t.record(start, totals(0, 0));
        t.record(start + Duration::from_secs(1), totals(100, 0));
        t.record(start + Duration::from_secs(2), totals(300, 10));
        let view = t.view();
        assert_eq!(view.requests_per_second, 200.0);
        assert_eq!(view.history, vec![100.0, 200.0]);
        assert!((view.error_rate - 10.0 / 300.0).abs() < 1e-9);
        // An unknown backend reads as idle.
        let h = History::default();
        assert_eq!(
            h.backend("127.0.0.1:2".parse().unwrap())
                .requests_per_second,
            0.0
        );
    }

    #[test]
    fn only_the_sparkline_and_the_window_are_kept() {
        let start = Instant::now();
        let mut t = Track::default();
        for i in 0..400 {
            t.record(start + Duration::from_secs(i), totals(i, 0));
        }
        assert_eq!(t.view().history.len(), SPARKLINE);
        assert_eq!(t.recent.len(), WINDOW + 1);
    }
}
