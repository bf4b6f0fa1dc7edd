//! `retry_on`: the statuses a pool's answer is retried on elsewhere (a
//! backend shutting down answers `503` for a moment; a proxy in front of
//! one `502` or `504`). A set of 5xx statuses, small and `Copy`, so a
//! request's plan carries it without allocating.

use std::fmt;

/// A set of statuses from 500 to 599; empty (the default): answers are
/// never retried. Two `u64` words rather than a `u128`: it travels in every
/// request's plan, and a 16-byte alignment would pad every connection's
/// task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn([u64; 2]);

/// The statuses `retry_on` may name.
const LOWEST: u16 = 500;
const HIGHEST: u16 = 599;

impl RetryOn {
    /// Is `status` one of them?
    pub fn contains(self, status: u16) -> bool {
        (LOWEST..=HIGHEST).contains(&status) && {
            let bit = usize::from(status - LOWEST);
            self.0[bit / 64] & (1 << (bit % 64)) != 0
        }
    }

    /// No status: answers are relayed whatever they are.
    pub fn is_empty(self) -> bool {
        self.0 == [0, 0]
    }

    /// Add `status`, or say why it cannot be retried on.
    pub fn insert(&mut self, status: i64) -> Result<(), String> {
        match u16::try_from(status) {
            Ok(s) if (LOWEST..=HIGHEST).contains(&s) => {
                let bit = usize::from(s - LOWEST);
                self.0[bit / 64] |= 1 << (bit % 64);
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

    /// The file's `retry_on` per pool, `--retry-on` for the default pool,
    /// and bad values named by file, line and key (or flag).
    #[test]
    fn per_pool_in_the_file_and_by_flag_for_the_default_pool() {
        use crate::config::cli::Cli;
        use crate::config::Config;
        use clap::Parser;
        let cli = |args: &[&str]| Cli::parse_from(["corelb"].iter().chain(args));
        let text = "[[pools]]\nname = \"default\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n\
                    [[pools]]\nname = \"api\"\nretry_on = [503, 502]\n\
                    backends = [{ addr = \"127.0.0.1:2\" }]\n";
        let c = Config::from_toml(&cli(&[]), "t.toml", text).unwrap();
        assert!(c.pools[0].retry_on.is_empty(), "off by default");
        assert_eq!(c.pools[1].retry_on.to_string(), "502,503");
        let c = Config::from_toml(&cli(&["--retry-on", "504"]), "t.toml", text).unwrap();
        assert_eq!(c.pools[0].retry_on.to_string(), "504");
        assert_eq!(
            c.pools[1].retry_on.to_string(),
            "502,503",
            "a pool keeps its own"
        );
        let bad = text.replace("[503, 502]", "[503, 404]");
        let e = Config::from_toml(&cli(&[]), "t.toml", &bad).unwrap_err().0;
        assert!(
            e.starts_with("t.toml:6:18: pools[1].retry_on[1]: invalid value 404: expected a 5xx"),
            "{e}"
        );
        let e = Config::from_toml(&cli(&["--retry-on", "503,abc"]), "t.toml", text)
            .unwrap_err()
            .0;
        assert!(
            e.contains("--retry-on") && e.contains("`abc` is not a status"),
            "{e}"
        );
    }

    /// A backend that is down is probed as often as an up one unless told
    /// otherwise (`--health-down-interval` used to default to 5s).
    #[test]
    fn the_down_interval_defaults_to_the_health_interval() {
        use crate::config::cli::Cli;
        use crate::config::Config;
        use clap::Parser;
        let load = |args: &[&str]| {
            let argv = ["corelb", "--backend", "127.0.0.1:1"].iter().chain(args);
            Config::load(&Cli::parse_from(argv))
                .unwrap()
                .settings
                .resilience
                .health
        };
        let h = load(&["--health-interval", "300ms"]);
        assert_eq!(h.down_interval, std::time::Duration::from_millis(300));
        let h = load(&["--health-interval", "300ms", "--health-down-interval", "2s"]);
        assert_eq!(h.down_interval, std::time::Duration::from_secs(2));
    }
}
