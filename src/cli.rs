//! Command-line flags.
//!
//! Every flag is optional here so that a config file (`--config`) can supply
//! the value and a flag can still override it; the defaults live in
//! [`crate::config`] and are quoted in each help text. Each flag but
//! `--config`, `--check`, `--backend`, `--algorithm` and `--hash-key` has a
//! config-file key of the same name with `_` for `-` (`--no-pin` is
//! `pin = false`); see `configs/corelb.toml`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// corelb: a thread-per-core HTTP/1.1 load balancer.
#[derive(Debug, Parser, Default, Clone)]
#[command(name = "corelb", version, about, long_about = None)]
pub struct Cli {
    /// What to run; without one, corelb runs the load balancer.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML config file (see configs/corelb.toml); flags given as well
    /// override its values.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Validate the configuration (file and flags), print the result and
    /// exit: 0 if it is valid, 1 with the reason if not.
    #[arg(long, global = true)]
    pub check: bool,

    /// Address to accept clients on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", global = true)]
    pub listen: Option<String>,

    /// Backend server as HOST:PORT[,weight=N] (weight 1 to 10000, default
    /// 1); repeat for more. Host names are resolved at start. Forms the pool
    /// named `default`, replacing the backends of the config file's
    /// `default` pool, or adding that pool as the one serving requests no
    /// route matches.
    #[arg(long = "backend", value_name = "ADDR[,weight=N]", global = true)]
    pub backends: Vec<String>,

    /// Worker threads, one per core [default: number of available cores].
    #[arg(long, value_name = "N", global = true)]
    pub threads: Option<usize>,

    /// Do not pin worker threads to cores [default: pinned].
    #[arg(long, global = true, overrides_with = "pin")]
    pub no_pin: bool,

    /// Pin worker threads to cores, overriding `pin = false` in the file.
    #[arg(long, global = true, overrides_with = "no_pin")]
    pub pin: bool,

    /// Send every worker an even share of new connections, instead of
    /// fewer to workers whose cores are busy with other work [default:
    /// steered by load].
    #[arg(long, global = true, overrides_with = "accept_steering")]
    pub no_accept_steering: bool,

    /// Steer new connections by load, overriding `accept_steering = false`
    /// in the file.
    #[arg(long, global = true, overrides_with = "no_accept_steering")]
    pub accept_steering: bool,

    /// I/O driver: auto (io_uring, falling back to epoll), uring or epoll
    /// [default: auto].
    #[arg(long, value_name = "DRIVER", global = true)]
    pub io_driver: Option<String>,

    /// Balancing algorithm of the default pool (the `--backend` pool, else
    /// the file's `default` pool, else its first) [default: round-robin].
    #[arg(long, value_name = "NAME", global = true)]
    pub algorithm: Option<String>,

    /// What the default pool hashes for consistent-hash: client-ip, path,
    /// header:NAME or cookie:NAME [default: client-ip].
    #[arg(long, value_name = "KEY", global = true)]
    pub hash_key: Option<String>,

    /// Listen backlog of each worker's socket [default: 4096].
    #[arg(long, value_name = "N", global = true)]
    pub backlog: Option<u32>,

    /// Open client connections allowed per process; above it corelb stops
    /// accepting until one closes [default: 100000].
    #[arg(long, value_name = "N", global = true)]
    pub max_connections: Option<usize>,

    /// Open client connections allowed per client IP address, across all
    /// workers; a connection over it is closed at once; 0 for no limit
    /// [default: 0].
    #[arg(long, value_name = "N", global = true)]
    pub max_connections_per_ip: Option<usize>,

    /// Size of each connection's read buffer in bytes; also the largest
    /// request or response head accepted [default: 16384].
    #[arg(long, value_name = "BYTES", global = true)]
    pub buffer_size: Option<usize>,

    /// Idle keep-alive connections kept per worker per backend [default: 1024].
    #[arg(long, value_name = "N", global = true)]
    pub upstream_keepalive: Option<usize>,

    /// Time a client has to send a whole request head once it started one
    /// [default: 10s]. Socket timeouts are checked every 50 ms.
    #[arg(long, value_name = "DURATION", global = true)]
    pub client_header_timeout: Option<String>,

    /// Time an idle keep-alive client connection is kept open; also how long
    /// a client may stall mid-body or stop reading a response [default: 60s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub client_idle_timeout: Option<String>,

    /// Time allowed to connect to a backend [default: 3s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub connect_timeout: Option<String>,

    /// Time allowed between bytes from a backend (response head and body),
    /// and for a backend to take the request [default: 30s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub upstream_timeout: Option<String>,

    /// Time a backend has to start its answer (the response head), per
    /// try: an idempotent request is then retried on another backend,
    /// others get 504 [default: --upstream-timeout].
    #[arg(long, value_name = "DURATION", global = true)]
    pub response_timeout: Option<String>,

    /// Time a client may pause while sending a request body [default: 60s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub client_body_timeout: Option<String>,

    /// Probe every backend with `GET PATH` (per pool in the file:
    /// `health_path`) [default: off: no active health checks].
    #[arg(long, value_name = "PATH", global = true)]
    pub health_path: Option<String>,

    /// `Host` header of health probes [default: the backend's address].
    #[arg(long, value_name = "HOST", global = true)]
    pub health_host: Option<String>,

    /// Time between probes of a healthy backend [default: 2s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub health_interval: Option<String>,

    /// Time between probes while a backend may be changing state
    /// [default: 500ms].
    #[arg(long, value_name = "DURATION", global = true)]
    pub health_fast_interval: Option<String>,

    /// Time between probes of a backend that is down [default: 5s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub health_down_interval: Option<String>,

    /// Time a probe has to get a status line [default: 1s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub health_timeout: Option<String>,

    /// Statuses a healthy backend answers probes with, as LOW-HIGH
    /// [default: 200-399].
    #[arg(long, value_name = "LOW-HIGH", global = true)]
    pub health_status: Option<String>,

    /// Good probes in a row that bring a down backend back [default: 2].
    #[arg(long, value_name = "N", global = true)]
    pub health_rise: Option<u32>,

    /// Failed probes in a row that take a backend down [default: 3].
    #[arg(long, value_name = "N", global = true)]
    pub health_fall: Option<u32>,

    /// Failed tries in a row (connect failures, resets, timeouts and,
    /// unless --no-fail-on-5xx, 5xx answers) that eject a backend: its
    /// circuit breaker opens; 0 turns this off [default: 5].
    #[arg(long, value_name = "N", global = true)]
    pub max_fails: Option<u32>,

    /// Window over which --fail-ratio is measured [default: 10s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub fail_window: Option<String>,

    /// Share of failed tries within --fail-window (of at least
    /// --fail-min-requests) that ejects a backend; 0 turns this off
    /// [default: 50%].
    #[arg(long, value_name = "PERCENT", global = true)]
    pub fail_ratio: Option<String>,

    /// Tries --fail-window must hold before --fail-ratio counts
    /// [default: 20].
    #[arg(long, value_name = "N", global = true)]
    pub fail_min_requests: Option<u32>,

    /// Do not count 5xx answers against a backend [default: they count].
    #[arg(long, global = true)]
    pub no_fail_on_5xx: bool,

    /// How long a backend is ejected the first time; doubles with each
    /// ejection that follows [default: 5s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub ejection_time: Option<String>,

    /// Longest ejection, however many in a row [default: 2m].
    #[arg(long, value_name = "DURATION", global = true)]
    pub max_ejection_time: Option<String>,

    /// Most of a pool (in percent of its backends) ejected at once; one
    /// backend may always be [default: 50].
    #[arg(long, value_name = "PERCENT", global = true)]
    pub max_ejection_percent: Option<u32>,

    /// When fewer than this percent of a pool's backends are available,
    /// ejected ones are used again rather than refusing traffic (backends
    /// that fail their health checks never are) [default: 50].
    #[arg(long, value_name = "PERCENT", global = true)]
    pub panic_threshold: Option<u32>,

    /// Requests in flight allowed to one backend; beyond it requests go
    /// to another backend or get 503; 0 means no limit [default: 0].
    #[arg(long, value_name = "N", global = true)]
    pub max_requests: Option<u32>,

    /// Lower the weight of a backend slower than its pool or failing, and
    /// restore it gradually (round-robin and random pools) [default: off].
    #[arg(long, global = true)]
    pub adaptive_weights: bool,

    /// Ramp a backend that comes back (or is added) from a sixteenth of
    /// its weight to all of it over this time; 0s is off [default: 0s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub slow_start: Option<String>,

    /// Retries of a request on another backend, when nothing of the
    /// answer has reached the client: after a connect failure (any
    /// method), or a reset, close or --response-timeout before the answer
    /// (idempotent methods only) [default: 2].
    #[arg(long, value_name = "N", global = true)]
    pub retries: Option<u32>,

    /// Retries allowed as a share of recent requests (plus 3 a second per
    /// worker), so an outage does not become a retry storm [default: 20%].
    #[arg(long, value_name = "PERCENT", global = true)]
    pub retry_budget: Option<String>,
    /// Time a WebSocket (or other upgraded) tunnel may carry no byte in
    /// either direction before corelb closes it [default: 1h].
    #[arg(long, value_name = "DURATION", global = true)]
    pub tunnel_idle_timeout: Option<String>,

    /// Largest request body accepted, in bytes; a larger one is answered
    /// 413. The file's pools may set their own (`max_body_size`); 0 means
    /// no limit [default: 0].
    #[arg(long, value_name = "BYTES", global = true)]
    pub max_body_size: Option<u64>,

    /// On SIGTERM or SIGINT, time to let in-flight requests finish before
    /// exiting anyway [default: 30s].
    #[arg(long, value_name = "DURATION", global = true)]
    pub shutdown_timeout: Option<String>,

    /// Join a listen address another corelb already serves, for an
    /// overlapping restart: new connections come here, the old process is
    /// then stopped with SIGTERM [default: a busy address is an error].
    #[arg(long, global = true)]
    pub takeover: bool,

    /// Admin API (metrics, status, dashboard, runtime changes) address, or
    /// `off` [default: 127.0.0.1:9901; if that port is taken, corelb runs
    /// without admin and says so].
    #[arg(long, value_name = "ADDR|off", global = true)]
    pub admin: Option<String>,

    /// Bearer token required by admin calls that change state; also read
    /// from CORELB_ADMIN_TOKEN [default: none: such calls are allowed from
    /// loopback only].
    #[arg(long, value_name = "TOKEN", global = true)]
    pub admin_token: Option<String>,

    /// Least severe log level written to stderr: error, warn, info or
    /// debug [default: info].
    #[arg(long, value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,

    /// Log line format: text or json [default: text].
    #[arg(long, value_name = "FORMAT", global = true)]
    pub log_format: Option<String>,

    /// Access log file, or `-` for standard output; reopened on SIGUSR1
    /// [default: off].
    #[arg(long, value_name = "PATH|-", global = true)]
    pub access_log: Option<String>,

    /// Access log line format: combined (nginx's, plus backend and times)
    /// or json [default: combined].
    #[arg(long, value_name = "FORMAT", global = true)]
    pub access_log_format: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand, Clone)]
pub enum Command {
    /// Start three demo backends on loopback and corelb in front of them.
    Demo,
}
