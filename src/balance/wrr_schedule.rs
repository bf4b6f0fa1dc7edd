//! One period of smooth weighted round-robin, computed ahead of time.
//!
//! nginx's smooth WRR (see `round_robin.rs`) is periodic: after Σw picks
//! every backend has been chosen exactly w times and every score is back
//! to zero, so the sequence repeats. Replaying a precomputed period costs
//! O(1) a pick instead of O(n).
//!
//! Weights are first divided by their greatest common divisor (100:200:300
//! has period 6, not 600). Small cases are computed by running nginx's
//! algorithm itself, so the order is exactly nginx's. Where that would cost
//! too much (n × period steps over the budget) the period is laid out by
//! earliest deadline instead: backend i's k-th turn is due at
//! `(k + ½) / w_i`, which spaces each backend's turns evenly across the
//! period just as smoothly, in O(period × log n). Periods longer than
//! [`MAX_PERIOD`] are not precomputed at all.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Longest period precomputed: 4 bytes each, so 256 KiB per worker per
/// pool at most.
pub const MAX_PERIOD: u64 = 1 << 16;

/// Steps of nginx's O(n)-a-pick algorithm we are willing to run to get its
/// exact order (about a millisecond).
const SIMULATION_BUDGET: u64 = 1 << 20;

/// One period of backend indices for `weights`, or `None` if the period
/// would exceed [`MAX_PERIOD`]. Empty for no backends.
pub fn build(weights: &[u32]) -> Option<Vec<u32>> {
    let divisor = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w / divisor)).collect();
    let period: u64 = reduced.iter().sum();
    if period > MAX_PERIOD {
        return None;
    }
    if reduced.iter().all(|&w| w == 1) {
        // Equal weights: plain rotation, what both methods give.
        return Some((0..weights.len() as u32).collect());
    }
    if (weights.len() as u64).saturating_mul(period) <= SIMULATION_BUDGET {
        Some(simulate_nginx(&reduced, period))
    } else {
        Some(by_deadline(&reduced, period))
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// nginx's algorithm run for one period: add each weight to its score,
/// take the highest (first on ties), subtract the total from the winner.
fn simulate_nginx(weights: &[u64], period: u64) -> Vec<u32> {
    let total = period as i64;
    let mut scores = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(period as usize);
    for _ in 0..period {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            scores[i] += w as i64;
            if scores[i] > scores[best] {
                best = i;
            }
        }
        scores[best] -= total;
        schedule.push(best as u32);
    }
    schedule
}

/// A backend's next turn, due at `(2·turn + 1) / (2·weight)`.
#[derive(PartialEq, Eq)]
struct Turn {
    turn: u64,
    weight: u64,
    index: u32,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        // Cross-multiplied deadlines: exact, no floats. Ties by index.
        let ours = u128::from(2 * self.turn + 1) * u128::from(other.weight);
        let theirs = u128::from(2 * other.turn + 1) * u128::from(self.weight);
        ours.cmp(&theirs).then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Earliest deadline first over one period.
fn by_deadline(weights: &[u64], period: u64) -> Vec<u32> {
    let mut due: BinaryHeap<Reverse<Turn>> = weights
        .iter()
        .enumerate()
        .filter(|&(_, &w)| w > 0)
        .map(|(i, &w)| {
            Reverse(Turn {
                turn: 0,
                weight: w,
                index: i as u32,
            })
        })
        .collect();
    let mut schedule = Vec::with_capacity(period as usize);
    while let Some(Reverse(mut next)) = due.pop() {
        schedule.push(next.index);
        next.turn += 1;
        if next.turn < next.weight {
            due.push(Reverse(next));
        }
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(schedule: &[u32]) -> String {
        schedule.iter().map(|&i| (b'a' + i as u8) as char).collect()
    }

    #[test]
    fn nginx_order_for_small_pools() {
        assert_eq!(letters(&build(&[5, 1, 1]).expect("short")), "aabacaa");
        assert_eq!(letters(&build(&[1, 1, 1]).expect("short")), "abc");
        // Scaled weights give the same period.
        assert_eq!(letters(&build(&[500, 100, 100]).expect("short")), "aabacaa");
    }

    #[test]
    fn every_backend_gets_its_weight_per_period() {
        for weights in [
            vec![1u32, 2, 3],
            vec![7, 1, 1, 4, 2],
            vec![3; 10],
            vec![6, 4],
        ] {
            let divisor = weights.iter().fold(0, |g, &w| gcd(g, w));
            let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w / divisor)).collect();
            let period: u64 = reduced.iter().sum();
            for schedule in [
                build(&weights).expect("short"),
                by_deadline(&reduced, period),
            ] {
                assert_eq!(schedule.len() as u64, period, "{weights:?}");
                for (i, &w) in reduced.iter().enumerate() {
                    let count = schedule.iter().filter(|&&s| s as usize == i).count() as u64;
                    assert_eq!(count, w, "{weights:?}");
                }
            }
        }
    }

    #[test]
    fn deadline_order_is_smooth() {
        // The heavy backend's turns are spread out, never bunched.
        let schedule = by_deadline(&[5, 1, 1], 7);
        assert_eq!(letters(&schedule), "aaabcaa");
        let schedule = by_deadline(&[1, 3], 4);
        assert_eq!(letters(&schedule), "babb");
    }

    #[test]
    fn large_pools_use_deadlines_and_huge_periods_are_refused() {
        let weights: Vec<u32> = (0..4096).map(|i| 1 + i % 3).collect();
        let schedule = build(&weights).expect("period 8191 is short enough");
        assert_eq!(schedule.len(), 8191);
        assert!(build(&[10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 9_999]).is_none());
        assert_eq!(build(&[]), Some(vec![]));
    }
}
