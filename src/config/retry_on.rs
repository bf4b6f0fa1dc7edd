//! `retry_on`: the statuses a pool's answer is retried on elsewhere (a
//! backend shutting down answers `503` for a moment; a proxy in front of
//! one `502` or `504`). A set of 5xx statuses, small and `Copy`, so a
//! request's plan carries it without allocating.

use std::fmt;

/// A set of statuses from 500 to 599; empty (the default): answers are
/// never retried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn(u128);

/// The statuses `retry_on` may name.
const LOWEST: u16 = 500;
const HIGHEST: u16 = 599;

impl RetryOn {
    /// Is `status` one of them?
    pub fn contains(self, status: u16) -> bool {
        (LOWEST..=HIGHEST).contains(&status) && self.0 & (1 << (status - LOWEST)) != 0
    }

    /// No status: answers are relayed whatever they are.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Add `status`, or say why it cannot be retried on.
    pub fn insert(&mut self, status: i64) -> Result<(), String> {
        match u16::try_from(status) {
            Ok(s) if (LOWEST..=HIGHEST).contains(&s) => {
                self.0 |= 1 << (s - LOWEST);
                Ok(())
            }
            _ => Err(format!(
                "expected a 5xx status ({LOWEST} to {HIGHEST}): only a backend's \
                 server errors are retried on"
            )),
        }
    }

    /// The set from `--retry-on`'s text: statuses separated by commas
    /// (`502,503,504`); empty text is the empty set.
    pub fn parse_list(text: &str) -> Result<RetryOn, String> {
        let mut set = RetryOn::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let status = item
                .parse::<i64>()
                .map_err(|_| format!("`{item}` is not a status; expected e.g. 502,503,504"))?;
            set.insert(status).map_err(|e| format!("`{item}`: {e}"))?;
        }
        Ok(set)
    }
}

impl fmt::Display for RetryOn {
    /// As `--retry-on` takes it: `502,503,504`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for status in (LOWEST..=HIGHEST).filter(|&s| self.contains(s)) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{status}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_5xx_statuses() {
        let set = RetryOn::parse_list("502, 503,504").unwrap();
        assert!(set.contains(502) && set.contains(503) && set.contains(504));
        assert!(!set.contains(500) && !set.contains(200) && !set.contains(404));
        assert_eq!(set.to_string(), "502,503,504");
        assert!(RetryOn::parse_list("").unwrap().is_empty());
        assert!(!RetryOn::default().contains(503));
    }

    #[test]
    fn other_statuses_and_garbage_are_refused() {
        assert!(RetryOn::parse_list("404").unwrap_err().contains("5xx"));
        assert!(RetryOn::parse_list("600").is_err());
        assert!(RetryOn::parse_list("5o3")
            .unwrap_err()
            .contains("not a status"));
        assert!(RetryOn::default().insert(-503).is_err());
        assert!(RetryOn::default().insert(i64::MAX).is_err());
    }
}
