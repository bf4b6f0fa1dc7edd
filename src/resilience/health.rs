//! Active health checking of one backend: HAProxy's `rise`/`fall` and
//! `inter`/`fastinter`/`downinter`, as a pure state machine.
//!
//! A backend starts up (traffic flows from the start; the first probe
//! follows at once). `fall` failed probes in a row take it down, `rise`
//! good ones in a row bring it back. While a result disagrees with the
//! current state (the backend may be changing) probes come at the fast
//! interval; while it is down, at the down interval (by default the
//! same as the interval: HAProxy's `downinter` defaults to `inter`).
//! [`Health::passes`] counts good probes in a row whatever the state, so
//! that `rise` of them also end a passive ejection.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use crate::transport::tls::connector::TlsConnector;

/// How a pool's backends are probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Path requested (`GET`).
    pub path: String,
    /// `Host` header sent; the backend's address when `None`.
    pub host: Option<String>,
    /// Between probes of a backend in a steady state.
    pub interval: Duration,
    /// Between probes while a backend may be changing state.
    pub fast_interval: Duration,
    /// Between probes of a backend that is down.
    pub down_interval: Duration,
    /// A probe with no status line by then failed.
    pub timeout: Duration,
    /// Statuses that count as healthy.
    pub statuses: RangeInclusive<u16>,
    /// Good probes in a row that bring a down backend up.
    pub rise: u32,
    /// Failed probes in a row that take an up backend down.
    pub fall: u32,
    /// Probe over TLS (a pool with `tls = true`); `None`: plaintext.
    pub tls: Option<ProbeTls>,
    /// The pool's `send_proxy_protocol`: a probe starts with a header
    /// saying it is corelb's own connection (v2 `LOCAL`, v1 `UNKNOWN`), so
    /// a backend that requires one (nginx's `listen … proxy_protocol`)
    /// answers it, and logs corelb's own address for it.
    pub proxy_header: Option<crate::proxy_protocol::Version>,
}

/// TLS for one backend's probes: its pool's connector, and the backend
/// as written in the config (its host is the name verified).
#[derive(Debug, Clone)]
pub struct ProbeTls {
    pub connector: Arc<TlsConnector>,
    pub name: String,
}

impl PartialEq for ProbeTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.connector, &other.connector) && self.name == other.name
    }
}

impl Eq for ProbeTls {}

/// One backend's health as probes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    up: bool,
    /// Probes in a row that disagreed with `up`.
    streak: u32,
    /// Good probes in a row, whatever the state (see [`Health::passes`]).
    passes: u32,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A backend not yet probed: up.
    pub fn new() -> Self {
        Self {
            up: true,
            streak: 0,
            passes: 0,
        }
    }

    /// A backend not yet probed that starts down (one discovery just
    /// found, in a pool with health checks): `rise` good probes bring it up.
    pub fn down() -> Self {
        Self {
            up: false,
            ..Self::new()
        }
    }

    /// Good probes in a row since the last failed one, or since
    /// [`Health::forget_passes`]: `rise` of them after a passive ejection
    /// (an open breaker) end it, as they would end a down state.
    pub fn passes(&self) -> u32 {
        self.passes
    }

    /// Count good probes afresh: the backend was just ejected, and only
    /// probes from now on say it recovered.
    pub fn forget_passes(&mut self) {
        self.passes = 0;
    }

    /// Is the backend up?
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Take one probe's result; `Some(up)` when the state changed.
    pub fn record(&mut self, policy: &HealthPolicy, healthy: bool) -> Option<bool> {
        self.passes = if healthy {
            self.passes.saturating_add(1)
        } else {
            0
        };
        if healthy == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { policy.fall } else { policy.rise };
        if self.streak >= needed.max(1) {
            self.up = healthy;
            self.streak = 0;
            return Some(healthy);
        }
        None
    }

    /// Time until the next probe.
    pub fn next_interval(&self, policy: &HealthPolicy) -> Duration {
        if self.streak > 0 {
            policy.fast_interval
        } else if self.up {
            policy.interval
        } else {
            policy.down_interval
        }
    }
}

/// A probe's answer: the status line's code, if one came in time.
pub fn is_healthy(policy: &HealthPolicy, status: Option<u16>) -> bool {
    status.is_some_and(|s| policy.statuses.contains(&s))
}

/// Spread probes of many backends: `interval` moved by up to ±10 %,
/// from `seed` (any number that differs between backends and rounds).
pub fn jittered(interval: Duration, seed: u64) -> Duration {
    // splitmix64: cheap, and well spread even for consecutive seeds.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    interval.mul_f64(0.9 + 0.2 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            proxy_header: None,
            path: "/health".into(),
            host: None,
            interval: Duration::from_secs(2),
            fast_interval: Duration::from_millis(500),
            down_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            statuses: 200..=399,
            rise: 2,
            fall: 3,
            tls: None,
        }
    }

    #[test]
    fn fall_failures_in_a_row_take_it_down_rise_bring_it_back() {
        let p = policy();
        let mut h = Health::new();
        assert_eq!(h.record(&p, false), None);
        assert_eq!(h.record(&p, false), None);
        assert_eq!(h.record(&p, false), Some(false));
        assert!(!h.is_up());
        assert_eq!(h.record(&p, true), None);
        assert_eq!(h.record(&p, true), Some(true));
        assert!(h.is_up());
    }

    #[test]
    fn a_good_probe_resets_the_count() {
        let p = policy();
        let mut h = Health::new();
        h.record(&p, false);
        h.record(&p, false);
        h.record(&p, true);
        assert_eq!(h.record(&p, false), None);
        assert_eq!(h.record(&p, false), None);
        assert!(h.is_up());
    }

    #[test]
    fn intervals_follow_the_state() {
        let p = policy();
        let mut h = Health::new();
        assert_eq!(h.next_interval(&p), Duration::from_secs(2));
        h.record(&p, false);
        assert_eq!(h.next_interval(&p), Duration::from_millis(500));
        h.record(&p, false);
        h.record(&p, false);
        assert_eq!(h.next_interval(&p), Duration::from_secs(5));
        h.record(&p, true);
        assert_eq!(h.next_interval(&p), Duration::from_millis(500));
    }

    #[test]
    fn passes_count_good_probes_in_a_row_whatever_the_state() {
        let p = policy();
        let mut h = Health::new();
        h.record(&p, true);
        h.record(&p, true);
        assert_eq!(h.passes(), 2);
        h.forget_passes();
        assert_eq!(h.passes(), 0);
        h.record(&p, true);
        h.record(&p, false);
        assert_eq!(h.passes(), 0);
        h.record(&p, true);
        assert_eq!(h.passes(), 1);
    }

    #[test]
    fn statuses_and_jitter() {
        let p = policy();
        assert!(is_healthy(&p, Some(200)));
        assert!(is_healthy(&p, Some(399)));
        assert!(!is_healthy(&p, Some(500)));
        assert!(!is_healthy(&p, None));
        let base = Duration::from_secs(2);
        let spread: Vec<Duration> = (0..100).map(|s| jittered(base, s)).collect();
        assert!(spread
            .iter()
            .all(|d| *d >= base.mul_f64(0.9) && *d <= base.mul_f64(1.1)));
        assert!(spread.iter().any(|d| *d < base) && spread.iter().any(|d| *d > base));
    }
}
