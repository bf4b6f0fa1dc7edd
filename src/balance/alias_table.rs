//! Walker's alias table (Vose's construction): draw an index with chance
//! proportional to its weight in O(1), from one random number.
//!
//! The n weights are cut into n equal columns; column `i` holds part of
//! weight `i` and, on top, part of at most one other weight (its alias).
//! A draw picks a column uniformly, then keeps `i` or takes the alias by
//! comparing a second uniform number with the column's threshold — a
//! select, not an unpredictable branch.
//!
//! Everything is integer arithmetic: the thresholds are exact to 2⁻⁶⁴ and
//! the build never loses weight to rounding.

/// One column: keep this index when the spare draw is below `threshold`,
/// otherwise take `alias`.
#[derive(Debug, Clone, Copy)]
struct Column {
    threshold: u64,
    alias: u32,
}

/// An alias table over `u32` weights; zero weights are never drawn.
#[derive(Debug, Default)]
pub struct AliasTable {
    columns: Vec<Column>,
    total: u64,
    /// Build scratch, kept so rebuilding does not allocate.
    scaled: Vec<u128>,
    small: Vec<u32>,
    large: Vec<u32>,
}

impl AliasTable {
    /// Rebuild for `weights` (index `i` has weight `weights[i]`).
    ///
    /// At most `u32::MAX` entries: indices are stored as `u32`.
    pub fn rebuild(&mut self, weights: impl ExactSizeIterator<Item = u32> + Clone) {
        let n = weights.len();
        self.total = weights.clone().map(u64::from).sum();
        self.columns.clear();
        self.columns.extend((0..n).map(|i| Column {
            threshold: u64::MAX,
            alias: i as u32,
        }));
        if self.total == 0 {
            return;
        }
        // Column capacity is `total`: weight i scaled by n, so the n
        // columns hold n × total between them.
        let total = u128::from(self.total);
        self.scaled.clear();
        self.small.clear();
        self.large.clear();
        for (i, weight) in weights.enumerate() {
            let scaled = u128::from(weight) * n as u128;
            self.scaled.push(scaled);
            if scaled < total {
                self.small.push(i as u32);
            } else {
                self.large.push(i as u32);
            }
        }
        while let (Some(&short), Some(&tall)) = (self.small.last(), self.large.last()) {
            self.small.pop();
            let (s, t) = (short as usize, tall as usize);
            // scaled[s] < total ≤ 2⁶⁴ · n, and n ≤ 2³²: the shift fits.
            self.columns[s] = Column {
                threshold: ((self.scaled[s] << 64) / total) as u64,
                alias: tall,
            };
            self.scaled[t] -= total - self.scaled[s];
            if self.scaled[t] < total {
                self.large.pop();
                self.small.push(tall);
            }
        }
        // Whatever is left fills its own column exactly: keep the
        // defaults (threshold MAX, alias itself).
    }

    /// The index drawn for a column and a uniform spare number, or `None`
    /// when every weight is zero or `column` is out of range.
    #[inline]
    pub fn draw(&self, column: usize, spare: u64) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let c = self.columns.get(column)?;
        Some(if spare < c.threshold {
            column
        } else {
            c.alias as usize
        })
    }

    /// How many columns (the length of the weight list it was built from).
    pub fn len(&self) -> usize {
        self.columns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::rng::WorkerRng;

    fn shares(weights: &[u32], draws: usize) -> Vec<f64> {
        let mut table = AliasTable::default();
        table.rebuild(weights.iter().copied());
        let rng = WorkerRng::new(77);
        let mut counts = vec![0usize; weights.len()];
        for _ in 0..draws {
            let (column, spare) = rng.index_and_spare(table.len());
            counts[table.draw(column, spare).expect("weights are not all zero")] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn draws_follow_weights() {
        let weights = [1, 2, 3, 0, 10, 1];
        let total: u32 = weights.iter().sum();
        let got = shares(&weights, 200_000);
        for (share, &w) in got.iter().zip(&weights) {
            let want = f64::from(w) / f64::from(total);
            assert!((share - want).abs() < 0.005, "{got:?}");
        }
        assert_eq!(got[3], 0.0);
    }

    #[test]
    fn columns_hold_exactly_the_weights() {
        // Sum each index's probability mass over all columns: it must be
        // weight / total to within rounding of 2⁻⁶⁴ per column.
        let weights = [7u32, 1, 1, 10_000, 3, 0, 2];
        let mut table = AliasTable::default();
        table.rebuild(weights.iter().copied());
        let n = weights.len() as f64;
        let mut mass = vec![0f64; weights.len()];
        for (i, c) in table.columns.iter().enumerate() {
            let keep = c.threshold as f64 / 2f64.powi(64);
            mass[i] += keep / n;
            mass[c.alias as usize] += (1.0 - keep) / n;
        }
        let total = table.total as f64;
        for (m, &w) in mass.iter().zip(&weights) {
            assert!((m - f64::from(w) / total).abs() < 1e-12, "{mass:?}");
        }
    }

    #[test]
    fn all_zero_or_empty_draws_nothing() {
        let mut table = AliasTable::default();
        table.rebuild([0u32, 0].into_iter());
        assert_eq!(table.draw(0, 0), None);
        table.rebuild(std::iter::empty::<u32>());
        assert_eq!(table.draw(0, 0), None);
        table.rebuild([5u32].into_iter());
        assert_eq!(table.draw(0, u64::MAX), Some(0));
        assert_eq!(table.draw(1, 0), None);
    }
}
