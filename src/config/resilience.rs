//! The settings of health checks, ejection, the circuit breaker, weights
//! and retries (declared in `settings.rs`): their parsers, and what the
//! breaker and the retry budget make of them. All reloadable: they travel
//! in [`super::Settings`].

pub use super::settings::{HealthTiming, Resilience};
use std::time::Duration;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Failed tries in a row that open it (0: never on a streak).
    pub max_fails: u32,
    /// Share of failed tries in the window that opens it (0: never on a ratio).
    pub ratio: f64,
    /// Tries the window must hold before the ratio counts.
    pub min_requests: u64,
    /// Length of the rolling window.
    pub window: Duration,
    /// Open time of the first trip.
    pub base_open: Duration,
    /// Longest open time, however many trips.
    pub max_open: Duration,
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
