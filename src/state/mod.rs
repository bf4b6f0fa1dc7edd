//! The ground floor: data shared between threads, and atomics only.
//!
//! Nothing here decides anything or touches a socket; the writers
//! (`control`, `resilience`, `admin`) change it and the workers read it.
//! [`crate::shared::Shared`] ties the parts the workers read into one value.
//!
//! | file | holds |
//! |---|---|
//! | [`backend`] | one upstream server: its atomics (in-flight, state, latency) and per-worker counters |
//! | [`entry`] | a backend's counters in one pool |
//! | [`origin`] | where a backend came from (static, DNS, SRV, file) |
//! | [`registry`] | backend state and counters by address, kept across snapshots |
//! | [`limits`], [`per_ip`] | open connections, process-wide and per client address |
//! | [`lifecycle`] | running → draining → stopping |
//! | [`outcome`], [`metrics`] | what a request and a try came to, and the per-worker counters it goes into |
//! | [`ewma`] | the peak, time-decaying latency average |

pub mod backend;
pub mod entry;
pub mod ewma;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod outcome;
pub mod per_ip;
pub mod registry;
