//! When a failed try counts against its backend, and when one more
//! backend of a pool may be ejected. Read by the request's plan (which
//! trips a breaker at once, on its own core) and by the resilience thread
//! (which advances breakers every tick): one rule for both.

use crate::snapshot::Pool;
use crate::state::backend::BackendState;

/// Does this try count against the backend? Failures always do; a 5xx
/// answer does when `fail_on_5xx` (Envoy's `consecutive_5xx`: a backend
/// answering 500 to everything is as broken as one that is down).
pub fn counts_as_failure(status: Option<u16>, failed: bool, fail_on_5xx: bool) -> bool {
    failed || (fail_on_5xx && status.is_some_and(|s| (500..600).contains(&s)))
}

/// May one more of a pool's `total` backends be ejected, with `ejected`
/// out already and at most `max_percent` allowed out? One may always be
/// (as in Envoy): a cap that kept a two-backend pool from ever ejecting
/// its broken half would be no protection.
pub fn ejection_allowed(ejected: usize, total: usize, max_percent: u32) -> bool {
    ejected == 0 || (ejected + 1) * 100 <= total * max_percent as usize
}

/// Is a backend in this state ejected (its breaker not closed)?
pub fn is_ejected(state: BackendState) -> bool {
    matches!(state, BackendState::Open | BackendState::HalfOpen)
}

/// (ejected, in rotation) of a pool: breakers not closed, among entries
/// not drained.
pub fn ejected_in(pool: &Pool) -> (usize, usize) {
    let live = pool.backends.iter().filter(|b| !b.drained);
    let (mut ejected, mut total) = (0, 0);
    for b in live {
        total += 1;
        if is_ejected(b.state()) {
            ejected += 1;
        }
    }
    (ejected, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejections_are_capped_by_share_but_one_always_may() {
        assert!(ejection_allowed(0, 1, 50));
        assert!(ejection_allowed(0, 3, 0));
        assert!(!ejection_allowed(1, 3, 50));
        assert!(ejection_allowed(1, 4, 50));
        assert!(!ejection_allowed(2, 4, 50));
        assert!(ejection_allowed(9, 10, 100));
    }

    #[test]
    fn five_hundreds_count_only_when_asked() {
        assert!(counts_as_failure(Some(500), false, true));
        assert!(counts_as_failure(Some(503), false, true));
        assert!(!counts_as_failure(Some(503), false, false));
        assert!(!counts_as_failure(Some(404), false, true));
        assert!(counts_as_failure(None, true, false));
    }
}
