//! The Prometheus text exposition format (version 0.0.4): how a family's
//! `# HELP` and `# TYPE` lines and its samples are written. Knows nothing
//! of corelb's metrics; [`super::metrics`] says what is written.
//!
//! Label values are any `Display` (a worker number, a socket address, a
//! pool name) written straight into the output through an escaping
//! writer, so a scrape does not allocate a string per label.

use std::fmt::{self, Display, Write as _};

use crate::state::metrics::{HistogramCounts, LATENCY_BOUNDS_US};

/// A label: its name and its value.
pub type Label<'a> = (&'static str, &'a dyn Display);

/// The metric type of a family (its `# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// Writes one family into the exposition: its header, then its samples.
pub struct Family<'o> {
    out: &'o mut String,
    name: &'static str,
}

impl<'o> Family<'o> {
    /// Start the family `name`: its `# HELP` and `# TYPE` lines.
    pub fn start(out: &'o mut String, name: &'static str, kind: Kind, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
        Family { out, name }
    }

    /// One sample of the family.
    pub fn sample(&mut self, labels: &[Label<'_>], value: impl Display) {
        self.line("", labels, None, value);
    }

    /// A histogram's samples: the cumulative buckets (`le` in seconds),
    /// then the sum (seconds) and the count.
    pub fn histogram(&mut self, labels: &[Label<'_>], counts: &HistogramCounts) {
        let mut cumulative = 0;
        for (i, n) in counts.buckets.iter().enumerate() {
            cumulative += n;
            let seconds;
            let le: &dyn Display = match LATENCY_BOUNDS_US.get(i) {
                Some(us) => {
                    seconds = *us as f64 / 1e6;
                    &seconds
                }
                None => &"+Inf",
            };
            self.line("_bucket", labels, Some(le), cumulative);
        }
        self.line("_sum", labels, None, counts.sum_us as f64 / 1e6);
        self.line("_count", labels, None, cumulative);
    }

    /// `name{suffix}{labels,le} value`, the braces left out when there is
    /// no label.
    fn line(
        &mut self,
        suffix: &str,
        labels: &[Label<'_>],
        le: Option<&dyn Display>,
        value: impl Display,
    ) {
        self.out.push_str(self.name);
        self.out.push_str(suffix);
        let mut all = labels.iter().copied().chain(le.map(|v| ("le", v)));
        if let Some(first) = all.next() {
            self.out.push('{');
            self.label(first);
            for label in all {
                self.out.push(',');
                self.label(label);
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn label(&mut self, (name, value): Label<'_>) {
        self.out.push_str(name);
        self.out.push_str("=\"");
        let _ = write!(Escaped(self.out), "{value}");
        self.out.push('"');
    }
}

/// Writes through to a string, escaping as label values must: `\`, `"`
/// and line feeds.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '"' => self.0.push_str("\\\""),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels() {
        let mut out = String::new();
        let mut f = Family::start(&mut out, "x_total", Kind::Counter, "Things.");
        f.sample(&[], 3);
        f.sample(&[("pool", &"a\"b\\c\nd"), ("worker", &7)], 1.5);
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n\
             x_total{pool=\"a\\\"b\\\\c\\nd\",worker=\"7\"} 1.5\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_in_seconds() {
        let mut counts = HistogramCounts::default();
        counts.buckets[0] = 2;
        counts.buckets[crate::state::metrics::BUCKETS - 1] = 1;
        counts.sum_us = 1_500_000;
        let mut out = String::new();
        Family::start(&mut out, "d_seconds", Kind::Histogram, "D.")
            .histogram(&[("backend", &"b")], &counts);
        let first_le = LATENCY_BOUNDS_US[0] as f64 / 1e6;
        assert!(out.contains(&format!(
            "d_seconds_bucket{{backend=\"b\",le=\"{first_le}\"}} 2\n"
        )));
        assert!(out.contains("d_seconds_bucket{backend=\"b\",le=\"+Inf\"} 3\n"));
        assert!(
            out.ends_with("d_seconds_sum{backend=\"b\"} 1.5\nd_seconds_count{backend=\"b\"} 3\n")
        );
    }
}
