//! A small, fast, *stable* 64-bit hash for consistent hashing.
//!
//! Consistent hashing only works if the same key lands on the same backend
//! on every worker, in every process, across restarts and upgrades. So the
//! hash must not be seeded randomly (as `std`'s `RandomState` is) and must
//! not change when a dependency is bumped: it is written out here, in a few
//! lines, and pinned by known-answer tests.
//!
//! It is a wyhash-style construction: eight bytes at a time are folded in
//! with a 64×64→128-bit multiply whose halves are xor-ed together ("mum"),
//! then the result goes through SplitMix64's finaliser. Not cryptographic and not meant to be: a
//! client can pick its own key anyway, so collision resistance buys nothing
//! here; spreading similar keys (IPs that differ in one byte, paths that
//! share a prefix) evenly is what matters.

/// Odd 64-bit constants from wyhash; any well-mixed odd constants would do.
const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// Multiply into 128 bits and fold the halves: the core mixing step.
#[inline]
fn mum(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Scramble all 64 bits of `x` so every input bit affects every output bit
/// (SplitMix64's finaliser). A bijection: distinct inputs stay distinct,
/// which matters when it spreads worker seeds.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hash `bytes` with a fixed `seed` (different seeds give independent
/// hashes of the same bytes, which Maglev uses for offset and skip).
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    // The length goes in first so that zero-padding the last chunk cannot
    // make `b"a"` and `b"a\0"` collide.
    let mut state = seed ^ P0 ^ (bytes.len() as u64).wrapping_mul(P2);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Little-endian on purpose: the same bytes must hash the same on
        // every architecture.
        state = mum(state ^ P1, u64::from_le_bytes(word) ^ P2);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        state = mum(state ^ P1, u64::from_le_bytes(word) ^ P2);
    }
    mix64(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// If one of these changes, keys move between backends after an
    /// upgrade: that needs a release note, not just a new constant here.
    #[test]
    fn known_answers_are_pinned() {
        assert_eq!(hash_bytes(0, b""), KNOWN[0]);
        assert_eq!(hash_bytes(0, b"a"), KNOWN[1]);
        assert_eq!(hash_bytes(0, b"/api/users/42"), KNOWN[2]);
        assert_eq!(hash_bytes(7, b"/api/users/42"), KNOWN[3]);
        assert_eq!(mix64(1), KNOWN[4]);
    }

    const KNOWN: [u64; 5] = [
        0x7de5_3de7_72ea_694c,
        0x954e_2946_785e_78c8,
        0x106e_20d6_a14f_c533,
        0xb3a7_2ee8_c7a7_1781,
        0x5692_161d_100b_05e5,
    ];

    #[test]
    fn padding_and_seed_change_the_hash() {
        assert_ne!(hash_bytes(0, b"a"), hash_bytes(0, b"a\0"));
        assert_ne!(hash_bytes(0, b""), hash_bytes(0, b"\0"));
        assert_ne!(hash_bytes(1, b"abc"), hash_bytes(2, b"abc"));
        assert_ne!(hash_bytes(0, b"12345678"), hash_bytes(0, b"12345679"));
    }

    #[test]
    fn one_byte_change_flips_about_half_the_bits() {
        let mut total = 0;
        let rounds = 1000u32;
        for i in 0..rounds {
            let a = format!("10.0.{}.{}", i / 256, i % 256);
            let b = format!("10.0.{}.{}", i / 256, (i % 256) ^ 1);
            total += (hash_bytes(0, a.as_bytes()) ^ hash_bytes(0, b.as_bytes())).count_ones();
        }
        let average = f64::from(total) / f64::from(rounds);
        assert!(
            (28.0..36.0).contains(&average),
            "average flipped bits {average}"
        );
    }
}
