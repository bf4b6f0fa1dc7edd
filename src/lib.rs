//! corelb: a thread-per-core HTTP/1.1 load balancer for Linux.
//!
//! # Layout
//!
//! | module | holds |
//! |---|---|
//! | [`cli`], [`config`] | flags and the validated, typed [`config::Config`] |
//! | [`runtime`] | pinned worker threads, one monoio runtime each |
//! | [`listener`] | SO_REUSEPORT sockets, accept loop, connection cap |
//! | [`steering`] | load-aware split of new connections between workers (reuseport BPF) |
//! | [`worker`] | per-thread state: upstream pool, balancer state |
//! | [`proxy`] | the connection loop, upstream exchange and relay: where protocol meets sockets |
//! | [`http`] | pure HTTP/1.1: head parsing, body framing, head rewriting |
//! | [`io`] | monoio owned-buffer helpers |
//! | [`deadline`] | coarse per-worker timeouts for socket waits, swept each tick |
//! | [`pool`] | per-worker idle upstream connections |
//! | [`backend`], [`snapshot`] | backends and their shared atomics; pools and routes |
//! | [`balance`] | the balancing algorithms, one a file |
//! | [`error`] | failures and the status each gets |
//! | [`ewma`] | the peak, time-decaying latency average |
//! | [`demo`] | `corelb demo`: built-in backends |

pub mod backend;
pub mod balance;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod demo;
pub mod error;
pub mod ewma;
pub mod http;
pub mod io;
pub mod listener;
pub mod pool;
pub mod proxy;
pub mod runtime;
pub mod snapshot;
pub mod steering;
pub mod syscall;
pub mod worker;
