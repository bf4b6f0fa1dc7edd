//! Log lines (stderr): `--log-level`, `--log-format text|json`, through
//! `tracing`. Only events are logged here — start, errors, state changes —
//! never a line per request (that is the access log's job).

use std::cell::Cell;
use std::time::{Duration, Instant};

use tracing::Level;

use crate::config::{LogFormat, LogLevel};

/// Send log lines to stderr at `level` and above, in `format`. Safe to
/// call more than once (the first call wins).
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Error => Level::ERROR,
        LogLevel::Warn => Level::WARN,
        LogLevel::Info => Level::INFO,
        LogLevel::Debug => Level::DEBUG,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A repeating event logged at most once per [`Limiter::every`], with the
/// count of the ones kept quiet: a backend that is down fails every
/// request, and a line per request would flood the log. One per worker
/// (a `Cell`: no lock, and only the error path touches it).
#[derive(Debug)]
pub struct Limiter {
    every: Duration,
    last: Cell<Option<Instant>>,
    quiet: Cell<u64>,
}

impl Limiter {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            last: Cell::new(None),
            quiet: Cell::new(0),
        }
    }

    /// An event at `now`: `Some(n)` to log it, with `n` events since the
    /// last line that were not; `None` to keep quiet.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        match self.last.get() {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.quiet.set(self.quiet.get() + 1);
                None
            }
            _ => {
                self.last.set(Some(now));
                Some(self.quiet.replace(0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_event_is_logged_once_per_period_with_a_count() {
        let limiter = Limiter::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(limiter.allow(start), Some(0));
        assert_eq!(limiter.allow(start + Duration::from_millis(10)), None);
        assert_eq!(limiter.allow(start + Duration::from_millis(20)), None);
        assert_eq!(limiter.allow(start + Duration::from_secs(1)), Some(2));
    }
}
