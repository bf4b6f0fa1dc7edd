//! corelb: a thread-per-core HTTP/1.1 load balancer for Linux.
//!
//! # Layout
//!
//! Top to bottom, as the imports run (none runs back up; see
//! `docs/architecture.md`):
//!
//! | module | holds |
//! |---|---|
//! | [`mod@serve`], [`demo`] | the whole process: logging, signals, data plane, admin, control loop; `corelb demo`'s backends and config, which `main` hands to `serve` |
//! | [`runtime`] | pinned worker threads, one monoio runtime each |
//! | [`worker`] | one worker: its accept loop on its own SO_REUSEPORT listener, its periodic tasks, the drain |
//! | [`admin`] | the admin listener: metrics, status, dashboard, runtime API |
//! | [`discovery`] | the discovery thread: DNS (A/AAAA, SRV) and backends files, handed to control |
//! | [`control`] | the writer of shared state: reload, admin changes, signals, status history |
//! | [`resilience`] | the health thread: probes, breakers, ejection, adaptive weights |
//! | [`proxy`] | a client connection, each request's exchange, the upstream half of forwarding |
//! | [`plan`] | one request's tries: which backend, and what if it fails |
//! | [`shared`] | what every thread reads: the published snapshot, metrics blocks, limits, lifecycle |
//! | [`tls_load`] | from the configuration to TLS acceptors and connectors |
//! | [`snapshot`] | pools, routes and settings as workers see them |
//! | [`config`] | each setting declared once; flags + file → the validated, typed [`config::Config`] |
//! | [`balance`] | the balancing algorithms, one a file, and the consistent-hash key |
//! | [`transport`] | what a client speaks over (plain TCP, TLS), and TLS to backends: paths and flags, no `Config` |
//! | [`access_log`], [`logging`] | the buffered per-worker access log; log lines and their rate limit |
//! | [`error`] | failures, whose fault each is, and the status each gets |
//! | [`io`], [`pool`], [`buffers`], [`slots`], [`deadline`], [`syscall`] | owned-buffer I/O, idle upstream connections, per-worker free lists, coarse timeouts, plain syscalls |
//! | [`source_file`] | reading a file the operator names, without trusting what the path points at |
//! | [`steering`] | load-aware split of new connections between workers (reuseport BPF) |
//! | [`state`] | the ground floor: backends and their atomics, registry, limits, lifecycle, counters |
//! | [`http`] | the one HTTP/1 parser, pure: heads, bodies, rewriting, upgrades |

pub mod access_log;
pub mod admin;
pub mod balance;
pub mod buffers;
pub mod config;
pub mod control;
pub mod deadline;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod free_list;
pub mod h2;
pub mod http;
pub mod io;
pub mod logging;
pub mod memory;
pub mod plan;
pub mod pool;
pub mod proxy;
pub mod proxy_protocol;
pub mod resilience;
pub mod runtime;
pub mod serve;
pub mod shared;
pub mod slots;
pub mod snapshot;
pub mod source_file;
pub mod splice;
pub mod state;
pub mod steering;
pub mod syscall;
pub mod systemd;
pub mod tls_load;
pub mod transport;
pub mod worker;

pub use config::cli;
pub use serve::serve;
