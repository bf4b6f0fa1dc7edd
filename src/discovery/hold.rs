//! What one DNS answer does to a pool, as a pure state machine: when to
//! replace the backends, when to keep the last good set, when to ask again.
//!
//! - An answer with addresses replaces the set; the next question comes
//!   when its TTL runs out, clamped to `dns_min_ttl`..`dns_max_ttl`.
//! - A failure (timeout, SERVFAIL, REFUSED, no server) keeps the last good
//!   set for as long as it lasts: a resolver outage must not take a fleet
//!   out. Asked again after `dns_min_ttl`.
//! - NXDOMAIN or an empty answer is the name's owner saying there is
//!   nothing: the last good set is kept for `dns_hold` (a deploy that
//!   briefly empties a name costs nothing), then the pool empties — as
//!   nginx's `resolve` and HAProxy's `hold nx` do.

use std::time::{Duration, Instant};

use crate::config::{BackendConfig, DiscoveryTiming};
use crate::control::discovered::Resolution;

/// The shortest wait between two questions, whatever `dns_min_ttl` says.
const FLOOR: Duration = Duration::from_millis(100);

/// What a resolver said about one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Addresses, valid for `ttl`.
    Found {
        backends: Vec<BackendConfig>,
        ttl: Duration,
    },
    /// The name does not exist (`nxdomain`) or has no such records
    /// (`empty`).
    Gone { result: &'static str },
    /// No answer to trust: keep what we have.
    Failed { why: String },
}

/// One source's memory between answers.
#[derive(Debug, Default)]
pub struct Hold {
    /// Since when the name has been gone, while it is.
    gone_since: Option<Instant>,
}

impl Hold {
    /// Turn `answer`, received at `now`, into what the pool gets and how
    /// long until the next question.
    pub fn step(
        &mut self,
        answer: Answer,
        now: Instant,
        timing: &DiscoveryTiming,
    ) -> (Resolution, Duration) {
        let retry = timing.dns_min_ttl.max(FLOOR);
        match answer {
            Answer::Found { backends, ttl } => {
                self.gone_since = None;
                let ttl = ttl.clamp(timing.dns_min_ttl, timing.dns_max_ttl).max(FLOOR);
                let resolution = Resolution {
                    backends: Some(backends),
                    result: "ok",
                    detail: String::new(),
                    ttl: Some(ttl),
                };
                (resolution, ttl)
            }
            Answer::Failed { why } => {
                let resolution = Resolution {
                    backends: None,
                    result: "failed",
                    detail: format!("{why}; keeping the last good set"),
                    ttl: None,
                };
                (resolution, retry)
            }
            Answer::Gone { result } => {
                let since = *self.gone_since.get_or_insert(now);
                let left = timing
                    .dns_hold
                    .saturating_sub(now.saturating_duration_since(since));
                let (backends, detail) = if left.is_zero() {
                    let held = timing.dns_hold.as_secs_f64();
                    (
                        Some(Vec::new()),
                        format!("no backends (held the last good set {held:.0}s, --dns-hold)"),
                    )
                } else {
                    let left_s = left.as_secs_f64();
                    (
                        None,
                        format!("keeping the last good set for {left_s:.1}s more (--dns-hold)"),
                    )
                };
                let resolution = Resolution {
                    backends,
                    result,
                    detail,
                    ttl: None,
                };
                let wait = if left.is_zero() {
                    retry
                } else {
                    retry.min(left)
                };
                (resolution, wait.max(FLOOR))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> DiscoveryTiming {
        DiscoveryTiming {
            dns_min_ttl: Duration::from_secs(1),
            dns_max_ttl: Duration::from_secs(300),
            dns_hold: Duration::from_secs(30),
            resolvers: Vec::new(),
        }
    }

    fn one() -> Vec<BackendConfig> {
        vec![BackendConfig {
            addr: "10.0.0.1:80".parse().unwrap(),
            name: "10.0.0.1:80".into(),
            weight: 1,
            drained: false,
            origin: crate::state::origin::Origin::Dns,
        }]
    }

    #[test]
    fn ttls_are_clamped() {
        let (t0, mut hold) = (Instant::now(), Hold::default());
        let found = |ttl| Answer::Found {
            backends: one(),
            ttl: Duration::from_secs(ttl),
        };
        let (r, wait) = hold.step(found(0), t0, &timing());
        assert_eq!((r.result, wait), ("ok", Duration::from_secs(1)));
        let (_, wait) = hold.step(found(86400), t0, &timing());
        assert_eq!(wait, Duration::from_secs(300));
    }

    #[test]
    fn failures_keep_the_set_and_nxdomain_keeps_it_for_the_hold() {
        let (t0, mut hold) = (Instant::now(), Hold::default());
        let (r, _) = hold.step(
            Answer::Failed {
                why: "timeout".into(),
            },
            t0,
            &timing(),
        );
        assert!(r.backends.is_none() && r.detail.contains("timeout"));
        let gone = || Answer::Gone { result: "nxdomain" };
        let (r, wait) = hold.step(gone(), t0, &timing());
        assert!(r.backends.is_none(), "kept at first");
        assert_eq!(wait, Duration::from_secs(1));
        let (r, wait) = hold.step(gone(), t0 + Duration::from_millis(29_500), &timing());
        assert!(r.backends.is_none());
        assert_eq!(
            wait,
            Duration::from_millis(500),
            "asks again when the hold ends"
        );
        let (r, _) = hold.step(gone(), t0 + Duration::from_secs(30), &timing());
        assert_eq!(r.backends, Some(Vec::new()), "empty after the hold");
        assert!(r.detail.contains("--dns-hold"));
        let found = Answer::Found {
            backends: one(),
            ttl: Duration::from_secs(5),
        };
        hold.step(found, t0 + Duration::from_secs(31), &timing());
        let (r, _) = hold.step(gone(), t0 + Duration::from_secs(32), &timing());
        assert!(r.backends.is_none(), "a new hold after the name came back");
    }
}
