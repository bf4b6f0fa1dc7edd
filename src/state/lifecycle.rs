//! Running → draining → stopping: the one flag every worker watches.
//!
//! On SIGTERM or SIGINT the control thread moves the process to
//! `Draining`: each worker notices at its next tick, takes what is already
//! in its accept queue, closes its listener, answers the next request on
//! every kept-alive connection with `Connection: close`, closes idle ones,
//! and ends once its last connection has. After `--shutdown-timeout`, or on
//! a second signal, the control thread moves it to `Stopping`: workers end
//! at once, cutting what is left.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Serving.
    Running = 0,
    /// Finishing in-flight requests; accepting nothing new.
    Draining = 1,
    /// Ending now.
    Stopping = 2,
}

/// The phase, shared by every thread, and how many workers serve.
#[derive(Debug, Default)]
pub struct Lifecycle(AtomicU8, AtomicUsize);

impl Lifecycle {
    /// The phase now.
    #[inline]
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Running,
            1 => Phase::Draining,
            _ => Phase::Stopping,
        }
    }

    /// A worker's accept loops are running (told once by each worker).
    pub fn worker_serving(&self) {
        self.1.fetch_add(1, Ordering::Release);
    }

    /// Workers whose accept loops are running (for systemd's `READY=1`).
    pub fn workers_serving(&self) -> usize {
        self.1.load(Ordering::Acquire)
    }

    /// Move forward to `phase` (never back). Returns whether it moved.
    pub fn advance(&self, phase: Phase) -> bool {
        self.0.fetch_max(phase as u8, Ordering::AcqRel) < phase as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let l = Lifecycle::default();
        assert_eq!(l.phase(), Phase::Running);
        assert!(l.advance(Phase::Draining));
        assert!(!l.advance(Phase::Draining));
        assert!(!l.advance(Phase::Running));
        assert_eq!(l.phase(), Phase::Draining);
        assert!(l.advance(Phase::Stopping));
        assert_eq!(l.phase(), Phase::Stopping);
    }
}
