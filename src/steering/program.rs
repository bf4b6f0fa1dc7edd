//! The classic BPF program that picks a worker's listener for each new
//! connection, in proportion to the workers' weights.
//!
//! Attached to a SO_REUSEPORT group (`SO_ATTACH_REUSEPORT_CBPF`), the
//! program runs in the kernel for each incoming connection and returns the
//! index of the socket in the group that gets it — sockets are numbered in
//! the order they started listening, which is the workers' order. It draws
//! a random number and returns the first worker whose cumulative share of
//! the 2^32 range holds it: no per-connection work in corelb at all, and no
//! lock or hand-off between workers.

use libc::sock_filter;

fn statement(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Where each worker's range ends: worker `i` gets the random numbers below
/// `bounds[i]` not taken by those before it. The last worker takes the rest
/// and so has no bound.
pub fn bounds(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return bounds(&vec![1; weights.len()]);
    }
    let mut cumulative = 0u64;
    weights
        .iter()
        .take(weights.len().saturating_sub(1))
        .map(|&w| {
            cumulative += u64::from(w);
            u32::try_from((cumulative << 32) / total).unwrap_or(u32::MAX)
        })
        .collect()
}

/// The program for these weights (one per worker, in listener order).
pub fn program(weights: &[u32]) -> Vec<sock_filter> {
    let random = (libc::SKF_AD_OFF + libc::SKF_AD_RANDOM) as u32;
    let mut insns = vec![statement(
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        random,
    )];
    for (worker, bound) in bounds(weights).into_iter().enumerate() {
        // At or past the bound: skip this worker's return.
        insns.push(sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16,
            jt: 1,
            jf: 0,
            k: bound,
        });
        insns.push(statement(libc::BPF_RET | libc::BPF_K, worker as u32));
    }
    let last = weights.len().saturating_sub(1) as u32;
    insns.push(statement(libc::BPF_RET | libc::BPF_K, last));
    insns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_split_the_range_by_weight() {
        assert_eq!(bounds(&[1, 1]), vec![1 << 31]);
        assert_eq!(bounds(&[1, 1, 2]), vec![1 << 30, 1 << 31]);
        assert_eq!(bounds(&[5]), Vec::<u32>::new());
        // All zero is an even split, not a division by zero.
        assert_eq!(bounds(&[0, 0]), vec![1 << 31]);
        // A zero weight gets an empty range.
        assert_eq!(bounds(&[0, 3]), vec![0]);
        assert_eq!(bounds(&[3, 0, 0]), vec![u32::MAX, u32::MAX]);
    }

    #[test]
    fn program_returns_each_worker_once_then_the_last() {
        let p = program(&[1, 2, 3]);
        // load, (jump, return) per bounded worker, final return.
        assert_eq!(p.len(), 1 + 2 * 2 + 1);
        let returns: Vec<u32> = p
            .iter()
            .filter(|i| u32::from(i.code) == libc::BPF_RET | libc::BPF_K)
            .map(|i| i.k)
            .collect();
        assert_eq!(returns, vec![0, 1, 2]);
    }
}
