//! The settings of health checks, ejection, the circuit breaker, weights
//! and retries, read from flags and the file. All reloadable: they travel
//! in [`super::Settings`].

use std::time::Duration;

use super::file::FileConfig;
use super::values::{parse_duration, parse_duration_or_off};
use super::{wide, ConfigError, Setting};
use crate::cli::Cli;
use crate::resilience::breaker::BreakerPolicy;

/// How health probes are timed and judged (the path and host are per pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTiming {
    /// Between probes of a healthy backend.
    pub interval: Duration,
    /// While a backend may be changing state.
    pub fast_interval: Duration,
    /// Between probes of a backend that is down.
    pub down_interval: Duration,
    /// A probe with no status line by then failed.
    pub timeout: Duration,
    /// Healthy statuses, inclusive.
    pub statuses: (u16, u16),
    /// Good probes in a row that bring a backend up.
    pub rise: u32,
    /// Failed probes in a row that take it down.
    pub fall: u32,
}

/// Everything about failing backends and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resilience {
    /// Probe timing (probing itself is on per pool, by its health path).
    pub health: HealthTiming,
    /// Failed tries in a row that open a backend's breaker (0: off).
    pub max_fails: u32,
    /// Window of the failure ratio.
    pub fail_window: Duration,
    /// Failure ratio that opens the breaker, in percent (0: off).
    pub fail_ratio_percent: u32,
    /// Tries the window needs before the ratio counts.
    pub fail_min_requests: u32,
    /// 5xx answers count as failures.
    pub fail_on_5xx: bool,
    /// First open time; doubles with each trip in a row.
    pub ejection_time: Duration,
    /// Longest open time.
    pub max_ejection_time: Duration,
    /// Most of a pool ejected at once, in percent (one backend always may).
    pub max_ejection_percent: u32,
    /// Below this percent of a pool available, ejected backends are used.
    pub panic_threshold: u32,
    /// In-flight cap per backend (0: none).
    pub max_requests: u32,
    /// Weights follow latency and failures (round-robin, random).
    pub adaptive_weights: bool,
    /// Ramp time after a backend returns (zero: off).
    pub slow_start: Duration,
    /// Retries on another backend.
    pub retries: u32,
    /// Retries per request allowed, in percent.
    pub retry_budget_percent: u32,
}

impl Resilience {
    /// The breaker's thresholds.
    pub fn breaker(&self) -> BreakerPolicy {
        BreakerPolicy {
            max_fails: self.max_fails,
            ratio: f64::from(self.fail_ratio_percent) / 100.0,
            min_requests: u64::from(self.fail_min_requests),
            window: self.fail_window,
            base_open: self.ejection_time,
            max_open: self.max_ejection_time,
        }
    }

    /// The retry budget as a ratio.
    pub fn retry_ratio(&self) -> f64 {
        f64::from(self.retry_budget_percent) / 100.0
    }
}

/// `20%` or `20`: a whole percentage from 0 to 100.
pub fn parse_percent(text: &str) -> Result<u32, String> {
    let digits = text.trim().trim_end_matches('%').trim();
    match digits.parse::<u32>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err("expected a percentage from 0 to 100, such as 20%".into()),
    }
}

/// `200-399`, or one status `200`.
pub fn parse_status_range(text: &str) -> Result<(u16, u16), String> {
    let why = || "expected a status range such as 200-399".to_string();
    let status = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|n| (100..=599).contains(n))
            .ok_or_else(why)
    };
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (status(low)?, status(high)?),
        None => {
            let one = status(text)?;
            (one, one)
        }
    };
    if low > high {
        return Err(why());
    }
    Ok((low, high))
}

/// A health path must be an origin-form path.
pub fn parse_health_path(text: &str) -> Result<String, String> {
    let ok = text.starts_with('/') && text.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(text.to_string())
    } else {
        Err("expected a path starting with `/`, without spaces".into())
    }
}

/// A health `Host` value: printable ASCII without spaces.
pub fn parse_health_host(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.to_string())
    } else {
        Err("expected a host name, without spaces".into())
    }
}

/// Read every resilience setting from the flags and `file`.
pub(super) fn load(
    cli: &Cli,
    s: &Setting<'_>,
    file: &FileConfig,
) -> Result<Resilience, ConfigError> {
    let duration = |flag: &str, value: &Option<String>, key: &str, key_value, default| {
        s.text((flag, value.as_deref()), (key, key_value), parse_duration)
            .map(|d| d.unwrap_or(default))
    };
    let count = |flag: &str, value: Option<u32>, key: &str, key_value, range, default: u32| {
        s.number((flag, wide(value)), (key, key_value), range)
            .map(|n| n.map_or(default, |n| n as u32))
    };
    let percent = |flag: &str, value: &Option<String>, key: &str, key_value, default| {
        s.text((flag, value.as_deref()), (key, key_value), parse_percent)
            .map(|p| p.unwrap_or(default))
    };
    let health = HealthTiming {
        interval: duration(
            "health-interval",
            &cli.health_interval,
            "health_interval",
            file.health_interval.as_ref(),
            Duration::from_secs(2),
        )?,
        fast_interval: duration(
            "health-fast-interval",
            &cli.health_fast_interval,
            "health_fast_interval",
            file.health_fast_interval.as_ref(),
            Duration::from_millis(500),
        )?,
        down_interval: duration(
            "health-down-interval",
            &cli.health_down_interval,
            "health_down_interval",
            file.health_down_interval.as_ref(),
            Duration::from_secs(5),
        )?,
        timeout: duration(
            "health-timeout",
            &cli.health_timeout,
            "health_timeout",
            file.health_timeout.as_ref(),
            Duration::from_secs(1),
        )?,
        statuses: s
            .text(
                ("health-status", cli.health_status.as_deref()),
                ("health_status", file.health_status.as_ref()),
                parse_status_range,
            )?
            .unwrap_or((200, 399)),
        rise: count(
            "health-rise",
            cli.health_rise,
            "health_rise",
            file.health_rise.as_ref(),
            1..=100,
            2,
        )?,
        fall: count(
            "health-fall",
            cli.health_fall,
            "health_fall",
            file.health_fall.as_ref(),
            1..=100,
            3,
        )?,
    };
    let mut fail_on_5xx = file.fail_on_5xx.unwrap_or(true);
    if cli.no_fail_on_5xx {
        fail_on_5xx = false;
    }
    Ok(Resilience {
        health,
        max_fails: count(
            "max-fails",
            cli.max_fails,
            "max_fails",
            file.max_fails.as_ref(),
            0..=1_000_000,
            5,
        )?,
        fail_window: duration(
            "fail-window",
            &cli.fail_window,
            "fail_window",
            file.fail_window.as_ref(),
            Duration::from_secs(10),
        )?,
        fail_ratio_percent: percent(
            "fail-ratio",
            &cli.fail_ratio,
            "fail_ratio",
            file.fail_ratio.as_ref(),
            50,
        )?,
        fail_min_requests: count(
            "fail-min-requests",
            cli.fail_min_requests,
            "fail_min_requests",
            file.fail_min_requests.as_ref(),
            1..=1_000_000,
            20,
        )?,
        fail_on_5xx,
        ejection_time: duration(
            "ejection-time",
            &cli.ejection_time,
            "ejection_time",
            file.ejection_time.as_ref(),
            Duration::from_secs(5),
        )?,
        max_ejection_time: duration(
            "max-ejection-time",
            &cli.max_ejection_time,
            "max_ejection_time",
            file.max_ejection_time.as_ref(),
            Duration::from_secs(120),
        )?,
        max_ejection_percent: count(
            "max-ejection-percent",
            cli.max_ejection_percent,
            "max_ejection_percent",
            file.max_ejection_percent.as_ref(),
            0..=100,
            50,
        )?,
        panic_threshold: count(
            "panic-threshold",
            cli.panic_threshold,
            "panic_threshold",
            file.panic_threshold.as_ref(),
            0..=100,
            50,
        )?,
        max_requests: count(
            "max-requests",
            cli.max_requests,
            "max_requests",
            file.max_requests.as_ref(),
            0..=10_000_000,
            0,
        )?,
        adaptive_weights: cli.adaptive_weights || file.adaptive_weights.unwrap_or(false),
        slow_start: s
            .text(
                ("slow-start", cli.slow_start.as_deref()),
                ("slow_start", file.slow_start.as_ref()),
                parse_duration_or_off,
            )?
            .unwrap_or(Duration::ZERO),
        retries: count(
            "retries",
            cli.retries,
            "retries",
            file.retries.as_ref(),
            0..=10,
            2,
        )?,
        retry_budget_percent: percent(
            "retry-budget",
            &cli.retry_budget,
            "retry_budget",
            file.retry_budget.as_ref(),
            20,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_status_ranges() {
        assert_eq!(parse_percent("20%"), Ok(20));
        assert_eq!(parse_percent(" 0 "), Ok(0));
        assert!(parse_percent("120%").is_err());
        assert!(parse_percent("x").is_err());
        assert_eq!(parse_status_range("200-399"), Ok((200, 399)));
        assert_eq!(parse_status_range("204"), Ok((204, 204)));
        assert!(parse_status_range("399-200").is_err());
        assert!(parse_status_range("99-200").is_err());
        assert!(parse_health_path("/healthz").is_ok());
        assert!(parse_health_path("healthz").is_err());
        assert!(parse_health_path("/a b").is_err());
    }
}
