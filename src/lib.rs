//! corelb: a thread-per-core HTTP/1.1 load balancer for Linux.
//!
//! # Layout
//!
//! | module | holds |
//! |---|---|
//! | [`cli`], [`config`] | flags and the validated, typed [`config::Config`] |
//! | [`serve`] | the whole process: logging, signals, data plane, admin, control loop |
//! | [`control`] | the owner of everything shared: snapshot, registry, connection counts, lifecycle, reload, admin changes |
//! | [`admin`] | the admin listener: metrics, status, dashboard, runtime API |
//! | [`runtime`] | pinned worker threads, one monoio runtime each |
//! | [`listener`] | SO_REUSEPORT sockets, accept loop, connection cap |
//! | [`steering`] | load-aware split of new connections between workers (reuseport BPF) |
//! | [`worker`] | per-thread state: upstream pool, balancer state |
//! | [`proxy`] | the connection loop, upstream exchange and relay: where protocol meets sockets |
//! | [`http`] | pure HTTP/1.1: head parsing, body framing, head rewriting, upgrade decisions |
//! | [`io`] | monoio owned-buffer helpers |
//! | [`deadline`] | coarse per-worker timeouts for socket waits, swept each tick |
//! | [`pool`] | per-worker idle upstream connections |
//! | [`buffers`], [`slots`] | per-worker free lists of connection buffers and of exchange futures' memory |
//! | [`backend`], [`snapshot`] | backends and their shared atomics; pools and routes |
//! | [`balance`] | the balancing algorithms, one a file |
//! | [`error`] | failures and the status each gets |
//! | [`outcome`], [`metrics`] | what a request and a try came to, and the per-worker counters they go into |
//! | [`access_log`], [`logging`] | the buffered per-worker access log; log lines and their rate limit |
//! | [`ewma`] | the peak, time-decaying latency average |
//! | [`demo`] | `corelb demo`: built-in backends |

pub mod access_log;
pub mod admin;
pub mod balance;
pub mod buffers;
pub mod config;
pub mod control;
pub mod deadline;
pub mod demo;
pub mod error;
pub mod http;
pub mod io;
pub mod logging;
pub mod memory;
pub mod plan;
pub mod pool;
pub mod proxy;
pub mod resilience;
pub mod runtime;
pub mod serve;
pub mod shared;
pub mod slots;
pub mod snapshot;
pub mod state;
pub mod steering;
pub mod syscall;
pub mod transport;
pub mod worker;

pub use config::cli;
pub use serve::serve;
