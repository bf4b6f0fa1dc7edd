//! `--max-connections-per-ip`: open client connections per client address,
//! counted across all workers, so one client cannot take the whole
//! `--max-connections` budget.
//!
//! The count is a fixed table of atomic counters indexed by a hash of the
//! address, not a map from address to count:
//!
//! - **No lock on the accept path.** Taking a slot is one compare-and-swap
//!   loop on one counter (retried only while another worker changes the
//!   same counter); a map shared by the workers would need a lock or an
//!   epoch scheme, and removing an address whose last connection closed is
//!   exactly what lock-free maps make hard.
//! - **Bounded memory, whatever the clients.** [`SLOTS`] counters of 4
//!   bytes (256 KiB), allocated once at start: a flood of new addresses
//!   (an IPv6 client has 2^64 of them) costs nothing more.
//! - **Exact where it matters.** The check and the increment are one
//!   atomic step, so however many workers accept at once, no address
//!   holds more than the limit.
//!
//! The price: addresses whose hashes meet in a slot share its limit. A
//! collision can only make the limit stricter for the addresses involved,
//! never let anyone past it, and it matters only when their connections
//! together pass the limit (with 10 000 active addresses, about one in
//! seven shares its slot with one other). The hash is keyed at random per
//! process, so nobody can choose addresses that land in a victim's slot.
//!
//! Connections are counted whether the limit is on or not (one atomic
//! add per accept), so a reload that turns it on, or lowers it, applies to
//! the connections already open: those stay, new ones wait for the count
//! to fall below the limit.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Counters in the table: a power of two, for a mask instead of a division.
pub const SLOTS: usize = 1 << 16;

/// Open connections per client address (by slot), and the limit.
pub struct PerIpLimit {
    counts: Box<[AtomicU32]>,
    /// 0: no limit. A reload may change it.
    max: AtomicU32,
    /// Keyed at random: which addresses share a slot is nobody's choice.
    hasher: RandomState,
}

impl std::fmt::Debug for PerIpLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerIpLimit")
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

impl PerIpLimit {
    /// A table allowing `max` connections per address (0: any number).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            max: AtomicU32::new(clamp(max)),
            hasher: RandomState::new(),
        })
    }

    /// The limit now (0: none).
    pub fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    /// Allow `max` per address from now on (0: any number). Connections
    /// already over it stay open.
    pub fn set_max(&self, max: usize) {
        self.max.store(clamp(max), Ordering::Relaxed);
    }

    fn slot(&self, ip: IpAddr) -> usize {
        // An IPv4 client reaching a dual-stack listener shows as
        // `::ffff:a.b.c.d`: the same client either way.
        (self.hasher.hash_one(ip.to_canonical()) as usize) & (SLOTS - 1)
    }

    /// Count a new connection from `ip`, or `None` if `ip` (with the
    /// addresses sharing its slot) already has the limit open.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PerIpPermit> {
        let slot = self.slot(ip);
        let max = self.max();
        let count = &self.counts[slot];
        if max == 0 {
            count.fetch_add(1, Ordering::Relaxed);
        } else {
            // Relaxed: the counter guards nothing but itself.
            count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < max).then_some(n + 1)
                })
                .ok()?;
        }
        Some(PerIpPermit {
            table: Arc::clone(self),
            slot,
        })
    }

    /// Connections counted for `ip`'s slot now.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.counts[self.slot(ip)].load(Ordering::Relaxed)
    }
}

/// A limit above `u32::MAX` is no limit a process could reach.
fn clamp(max: usize) -> u32 {
    u32::try_from(max).unwrap_or(u32::MAX)
}

/// One open connection of one address; counted until dropped.
pub struct PerIpPermit {
    table: Arc<PerIpLimit>,
    slot: usize,
}

impl Drop for PerIpPermit {
    fn drop(&mut self) {
        self.table.counts[self.slot].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_over_the_limit_and_frees_on_drop() {
        let table = PerIpLimit::new(2);
        let a = ip("192.0.2.1");
        let first = table.try_acquire(a).unwrap();
        let _second = table.try_acquire(a).unwrap();
        assert!(table.try_acquire(a).is_none());
        assert_eq!(table.open(a), 2);
        drop(first);
        assert_eq!(table.open(a), 1);
        assert!(table.try_acquire(a).is_some());
    }

    #[test]
    fn zero_counts_without_limiting_and_a_new_limit_sees_the_count() {
        let table = PerIpLimit::new(0);
        let a = ip("2001:db8::1");
        let held: Vec<_> = (0..5).map(|_| table.try_acquire(a).unwrap()).collect();
        assert_eq!(table.open(a), 5);
        table.set_max(5);
        assert!(table.try_acquire(a).is_none());
        drop(held);
        assert_eq!(table.open(a), 0);
        assert!(table.try_acquire(a).is_some());
    }

    #[test]
    fn a_mapped_ipv4_address_is_the_same_client() {
        let table = PerIpLimit::new(1);
        let _held = table.try_acquire(ip("192.0.2.7")).unwrap();
        assert!(table.try_acquire(ip("::ffff:192.0.2.7")).is_none());
    }

    #[test]
    fn addresses_are_counted_apart_except_when_they_share_a_slot() {
        let table = PerIpLimit::new(1);
        let addrs: Vec<IpAddr> = (0..200u32)
            .map(|i| IpAddr::from((0xC000_0200 + i).to_be_bytes()))
            .collect();
        let mut held = Vec::new();
        let mut refused = 0;
        for &a in &addrs {
            match table.try_acquire(a) {
                Some(p) => held.push(p),
                None => refused += 1,
            }
        }
        let distinct: std::collections::HashSet<usize> =
            addrs.iter().map(|&a| table.slot(a)).collect();
        // Each slot holds one connection: collisions refuse, nothing more.
        assert_eq!(held.len(), distinct.len());
        assert_eq!(refused, addrs.len() - distinct.len());
    }

    #[test]
    fn racing_workers_never_pass_the_limit() {
        let table = PerIpLimit::new(8);
        let a = ip("198.51.100.9");
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        let peak = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        if let Some(p) = table.try_acquire(a) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            peak.fetch_max(table.open(a), Ordering::Relaxed);
                            drop(p);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::Relaxed) <= 8);
        assert!(admitted.load(Ordering::Relaxed) > 0);
        assert_eq!(table.open(a), 0);
    }
}
