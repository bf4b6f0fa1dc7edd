//! Every scalar setting, each declared once: its typed field, file key,
//! flag, default, range or parser, help text, and — by the group it is
//! in — whether a reload may change it. `declare.rs` turns this list into
//! the typed structs, the flags, the file's keys, `--help` and the
//! reload's restart-only check; nothing else names a setting's flag, key
//! or default.
//!
//! A `restart` group takes a restart to change: a reload keeps the running
//! values and names the flags that differ. A `reload` group is applied by
//! a reload (workers read [`Settings`] from the published snapshot).
//! Pools, backends and routes are structured, not scalar: `pools.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::declare::declare_settings;
use super::discovery::parse_resolver;
use super::file::{FileListener, FilePool, FileRoute};
use super::operations::{
    default_admin, parse_admin, parse_admin_host, parse_token, token_from_env, AccessLogFormat,
    AccessLogTarget, AdminListen, LogFormat, LogLevel,
};
use super::read::Reader;
use super::resilience::{parse_health_host, parse_health_path, parse_percent, parse_status_range};
use super::spec::{list, number, switch, text, SettingSpec, Spec};
use super::values::{parse_duration, parse_duration_or_off};
use super::{ConfigError, IoDriver};

/// A timeout or interval such as `500ms`, `10s` or `2m`.
fn duration(flag: &'static str, default: &'static str) -> Spec<Duration, String> {
    text(flag, "DURATION", parse_duration).default(default)
}

/// A whole percentage, `20%` or `20`.
fn percent(flag: &'static str, default: &'static str) -> Spec<u32, String> {
    text(flag, "PERCENT", parse_percent).default(default)
}

fn str_parse<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, String> {
    text.parse()
}

fn parse_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("an empty path".into());
    }
    Ok(PathBuf::from(text))
}

fn available_cores() -> Result<usize, ConfigError> {
    Ok(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

declare_settings! {
    /// What the process is built around: a reload cannot change it.
    restart struct ProcessConfig {
        /// Worker count.
        threads: usize = threads: i64 => number("threads", "N", 1..=1024)
            .default_computed("number of available cores", available_cores)
            .help("Worker threads, one per core"),
        /// Pin worker `i` to core `i`.
        pin: bool = pin: bool => switch("pin", true)
            .off("no-pin", "Do not pin worker threads to cores")
            .on("Pin worker threads to cores, overriding `pin = false` in the file")
            .shown("pinned"),
        /// Split new connections by how much of its core each worker gets
        /// (`crate::steering`), not evenly.
        accept_steering: bool = accept_steering: bool => switch("accept-steering", true)
            .off("no-accept-steering", "Send every worker an even share of new connections, \
                instead of fewer to workers whose cores are busy with other work")
            .on("Steer new connections by load, overriding `accept_steering = false` in the file")
            .shown("steered by load"),
        /// Driver for the monoio runtimes.
        io_driver: IoDriver = io_driver: String => text("io-driver", "DRIVER", str_parse)
            .default("auto")
            .help("I/O driver: auto (io_uring, falling back to epoll), uring or epoll"),
        /// Listen backlog per worker socket.
        backlog: u32 = backlog: i64 => number("backlog", "N", 1..=1_000_000)
            .default("4096")
            .help("Listen backlog of each worker's socket"),
        /// The admin API's address.
        admin: AdminListen = admin: String => text("admin", "ADDR|off", parse_admin)
            .default_computed("127.0.0.1:9901; if that port is taken, corelb runs without \
                admin and says so", default_admin)
            .help("Admin API (metrics, status, dashboard, runtime changes) address, or `off`"),
        /// How long an admin client has, from connecting, to send its
        /// whole request.
        admin_header_timeout: Duration = admin_header_timeout: String =>
            duration("admin-header-timeout", "5s")
                .help("Time an admin API client has, from connecting, to send its whole \
                    request; a slower one is closed"),
        /// Least severe level logged.
        log_level: LogLevel = log_level: String => text("log-level", "LEVEL", str_parse)
            .default("info")
            .help("Least severe log level written to stderr: error, warn, info or debug"),
        /// Log line format.
        log_format: LogFormat = log_format: String => text("log-format", "FORMAT", str_parse)
            .default("text")
            .help("Log line format: text or json"),
        /// Where the access log goes, if it is on (see
        /// [`ProcessConfig::access_log`]).
        access_log_target: Option<AccessLogTarget> = access_log: String =>
            text("access-log", "PATH|-", str_parse)
                .help("Access log file, or `-` for standard output; reopened on SIGUSR1")
                .optional("off"),
        /// The access log's line format.
        access_log_format: AccessLogFormat = access_log_format: String =>
            text("access-log-format", "FORMAT", str_parse)
                .default("combined")
                .help("Access log line format: combined (nginx's, plus backend and times) \
                    or json"),
        /// How long a graceful stop waits for in-flight requests.
        shutdown_timeout: Duration = shutdown_timeout: String => duration("shutdown-timeout", "30s")
            .help("On SIGTERM or SIGINT, time to let in-flight requests finish before \
                exiting anyway"),
    }

    /// The settings a reload may change besides pools and routes: workers
    /// read them from the published snapshot, so a change applies to the
    /// next request (buffer size: the next connection).
    #[derive(Copy)]
    reload struct Settings [
        /// Timeouts.
        timeouts: Timeouts,
        /// Health checks, ejection, breaker, weights and retries.
        resilience: Resilience,
    ] {
        /// Open client connections allowed per process.
        max_connections: usize = max_connections: i64 =>
            number("max-connections", "N", 1..=100_000_000)
                .default("100000")
                .help("Open client connections allowed per process; above it corelb stops \
                    accepting until one closes"),
        /// Open client connections allowed per client IP (0: no limit).
        max_connections_per_ip: usize = max_connections_per_ip: i64 =>
            number("max-connections-per-ip", "N", 0..=100_000_000)
                .default("0")
                .help("Open client connections allowed per client IP address, across all \
                    workers; a connection over it is closed at once; 0 for no limit"),
        /// Read buffer size per connection; the largest head accepted.
        buffer_size: usize = buffer_size: i64 =>
            number("buffer-size", "BYTES", 1024..=16 * 1024 * 1024)
                .default("16384")
                .help("Size of each connection's read buffer in bytes; also the largest \
                    request or response head accepted"),
        /// Idle pooled upstream connections per worker per backend (0:
        /// none). At least the requests a worker sends one backend at
        /// once, or busy periods churn connections: an idle connection is
        /// cheap, a new one is a TCP handshake.
        upstream_keepalive: usize = upstream_keepalive: i64 =>
            number("upstream-keepalive", "N", 0..=100_000)
                .default("1024")
                .help("Idle keep-alive connections kept per worker per backend"),
        /// HTTP/2: streams a client may have open at once per connection
        /// (each is a request in flight, on an upstream connection of its own).
        h2_max_concurrent_streams: u32 = h2_max_concurrent_streams: i64 =>
            number("h2-max-concurrent-streams", "N", 1..=10_000)
                .default("100")
                .help("HTTP/2: streams (requests in flight) a client may open at once on \
                    one connection"),
        /// HTTP/2: how much request body a stream may send before corelb
        /// has forwarded it (its flow-control window).
        h2_initial_window_size: u32 = h2_initial_window_size: i64 =>
            number("h2-initial-window-size", "BYTES", 65_535..=2_147_483_647)
                .default("262144")
                .help("HTTP/2: flow-control window of each stream, in bytes: request body a \
                    client may send ahead of what corelb has forwarded"),
        /// HTTP/2: the same, for all the streams of a connection together.
        h2_connection_window_size: u32 = h2_connection_window_size: i64 =>
            number("h2-connection-window-size", "BYTES", 65_535..=2_147_483_647)
                .default("1048576")
                .help("HTTP/2: flow-control window of each connection, in bytes (all its \
                    streams together)"),
        /// HTTP/2: the largest frame payload corelb accepts.
        h2_max_frame_size: u32 = h2_max_frame_size: i64 =>
            number("h2-max-frame-size", "BYTES", 16_384..=16_777_215)
                .default("16384")
                .help("HTTP/2: largest frame payload accepted from a client, in bytes"),
        /// HTTP/2: response bytes queued per stream for a client that
        /// does not open its window (a slow reader holds at most this).
        h2_max_send_buffer_size: usize = h2_max_send_buffer_size: i64 =>
            number("h2-max-send-buffer-size", "BYTES", 16_384..=16 * 1024 * 1024)
                .default("65536")
                .help("HTTP/2: response bytes queued per stream for a client that does not \
                    read them; past --client-idle-timeout without progress the stream is reset"),
        /// HTTP/2: streams the client reset before corelb took them,
        /// tolerated at once (rapid reset, CVE-2023-44487).
        h2_max_pending_accept_reset_streams: usize =
            h2_max_pending_accept_reset_streams: i64 =>
            number("h2-max-pending-accept-reset-streams", "N", 1..=100_000)
                .default("20")
                .help("HTTP/2: streams a client may open and reset before corelb takes them; \
                    more closes the connection with GOAWAY ENHANCE_YOUR_CALM (rapid reset)"),
        /// HTTP/2: streams corelb had to reset for a client's errors,
        /// tolerated per connection (MadeYouReset, CVE-2025-8671).
        h2_max_local_error_reset_streams: usize =
            h2_max_local_error_reset_streams: i64 =>
            number("h2-max-local-error-reset-streams", "N", 1..=100_000)
                .default("1024")
                .help("HTTP/2: streams corelb may reset for a client's protocol errors on \
                    one connection; more closes it with GOAWAY ENHANCE_YOUR_CALM (MadeYouReset)"),
    }

    /// Timeouts, all enforced per connection.
    #[derive(Copy)]
    reload struct Timeouts {
        /// From the first byte of a request head to its end.
        client_header: Duration = client_header_timeout: String =>
            duration("client-header-timeout", "10s")
                .help("Time a client has to send a whole request head once it started one \
                    (socket timeouts are checked every 50 ms)"),
        /// Between requests on a keep-alive client connection.
        client_idle: Duration = client_idle_timeout: String =>
            duration("client-idle-timeout", "60s")
                .help("Time an idle keep-alive client connection is kept open; also how long \
                    a client may stall mid-body or stop reading a response"),
        /// To establish a backend connection.
        connect: Duration = connect_timeout: String => duration("connect-timeout", "3s")
            .help("Time allowed to connect to a backend"),
        /// Between reads from a backend's body, and for it to take the request.
        upstream: Duration = upstream_timeout: String => duration("upstream-timeout", "30s")
            .help("Time allowed between bytes from a backend (response head and body), \
                and for a backend to take the request"),
        /// For a backend's response head, per try. Until set, the upstream
        /// timeout covers the head too, as it did before the two were
        /// told apart.
        response: Duration = response_timeout: String =>
            text("response-timeout", "DURATION", parse_duration)
                .default_same_as("--upstream-timeout", "upstream_timeout")
                .help("Time a backend has to start its answer (the response head), per try: \
                    an idempotent request is then retried on another backend, others get 504"),
        /// For a TLS client to finish its handshake, from its connect.
        tls_handshake: Duration = tls_handshake_timeout: String =>
            duration("tls-handshake-timeout", "10s")
                .help("Time a client has to complete its TLS handshake on a TLS listener"),
        /// Between reads of a request body from the client.
        client_body: Duration = client_body_timeout: String =>
            duration("client-body-timeout", "60s")
                .help("Time a client may pause while sending a request body"),
        /// With no byte either way through an upgraded tunnel.
        tunnel_idle: Duration = tunnel_idle_timeout: String =>
            duration("tunnel-idle-timeout", "1h")
                .help("Time a WebSocket (or other upgraded) tunnel may carry no byte in \
                    either direction before corelb closes it"),
    }

    /// What every pool gets unless it sets its own (in the file).
    reload struct PoolDefaults {
        /// Probe the backends with `GET` this path.
        health_path: Option<String> = health_path: String =>
            text("health-path", "PATH", parse_health_path)
                .help("Probe every backend with `GET PATH` (per pool in the file: \
                    `health_path`)")
                .optional("off: no active health checks"),
        /// `Host` of the probes.
        health_host: Option<String> = health_host: String =>
            text("health-host", "HOST", parse_health_host)
                .help("`Host` header of health probes")
                .optional("the backend's address"),
        /// Largest request body accepted (0: no limit).
        max_body_size: u64 = max_body_size: i64 => number("max-body-size", "BYTES", 0..=i64::MAX)
            .default("0")
            .help("Largest request body accepted, in bytes; a larger one is answered 413. \
                The file's pools may set their own (`max_body_size`); 0 means no limit"),
    }

    /// How health probes are timed and judged (the path and host are per pool).
    #[derive(Copy)]
    reload struct HealthTiming {
        /// Between probes of a healthy backend.
        interval: Duration = health_interval: String => duration("health-interval", "2s")
            .help("Time between probes of a healthy backend"),
        /// While a backend may be changing state.
        fast_interval: Duration = health_fast_interval: String =>
            duration("health-fast-interval", "500ms")
                .help("Time between probes while a backend may be changing state \
                    (never more than --health-interval)"),
        /// Between probes of a backend that is down.
        /// Until set, the health interval (HAProxy's `downinter`
        /// defaults to `inter`): a backend back is seen as soon as any.
        down_interval: Duration = health_down_interval: String =>
            text("health-down-interval", "DURATION", parse_duration)
                .default_same_as("--health-interval", "health_interval")
                .help("Time between probes of a backend that is down"),
        /// A probe with no status line by then failed.
        timeout: Duration = health_timeout: String => duration("health-timeout", "1s")
            .help("Time a probe has to get a status line"),
        /// Healthy statuses, inclusive.
        statuses: (u16, u16) = health_status: String =>
            text("health-status", "LOW-HIGH", parse_status_range)
                .default("200-399")
                .help("Statuses a healthy backend answers probes with, as LOW-HIGH"),
        /// Good probes in a row that bring a backend up.
        rise: u32 = health_rise: i64 => number("health-rise", "N", 1..=100)
            .default("2")
            .help("Good probes in a row that bring a down backend back"),
        /// Failed probes in a row that take it down.
        fall: u32 = health_fall: i64 => number("health-fall", "N", 1..=100)
            .default("3")
            .help("Failed probes in a row that take a backend down"),
    }

    /// Everything about failing backends and retries.
    #[derive(Copy)]
    reload struct Resilience [
        /// Probe timing (probing itself is on per pool, by its health path).
        health: HealthTiming,
    ] {
        /// Failed tries in a row that open a backend's breaker (0: off).
        max_fails: u32 = max_fails: i64 => number("max-fails", "N", 0..=1_000_000)
            .default("5")
            .help("Failed tries in a row (connect failures, resets, timeouts and, unless \
                --no-fail-on-5xx, 5xx answers) that eject a backend: its circuit breaker \
                opens; 0 turns this off"),
        /// Window of the failure ratio.
        fail_window: Duration = fail_window: String => duration("fail-window", "10s")
            .help("Window over which --fail-ratio is measured"),
        /// Failure ratio that opens the breaker, in percent (0: off).
        fail_ratio_percent: u32 = fail_ratio: String => percent("fail-ratio", "50%")
            .help("Share of failed tries within --fail-window (of at least \
                --fail-min-requests) that ejects a backend; 0 turns this off"),
        /// Tries the window needs before the ratio counts.
        fail_min_requests: u32 = fail_min_requests: i64 =>
            number("fail-min-requests", "N", 1..=1_000_000)
                .default("20")
                .help("Tries --fail-window must hold before --fail-ratio counts"),
        /// 5xx answers count as failures.
        fail_on_5xx: bool = fail_on_5xx: bool => switch("fail-on-5xx", true)
            .off("no-fail-on-5xx", "Do not count 5xx answers against a backend")
            .shown("they count"),
        /// First open time; doubles with each trip in a row.
        ejection_time: Duration = ejection_time: String => duration("ejection-time", "5s")
            .help("How long a backend is ejected the first time; doubles with each \
                ejection that follows"),
        /// Longest open time.
        max_ejection_time: Duration = max_ejection_time: String =>
            duration("max-ejection-time", "2m")
                .help("Longest ejection, however many in a row"),
        /// Most of a pool ejected at once, in percent (one backend always may).
        max_ejection_percent: u32 = max_ejection_percent: i64 =>
            number("max-ejection-percent", "PERCENT", 0..=100)
                .default("50")
                .help("Most of a pool (in percent of its backends) ejected at once; one \
                    backend may always be"),
        /// Below this percent of a pool available, ejected backends are used.
        panic_threshold: u32 = panic_threshold: i64 =>
            number("panic-threshold", "PERCENT", 0..=100)
                .default("50")
                .help("When fewer than this percent of a pool's backends are available, \
                    ejected ones are used again rather than refusing traffic (backends that \
                    fail their health checks never are)"),
        /// In-flight cap per backend (0: none).
        max_requests: u32 = max_requests: i64 => number("max-requests", "N", 0..=10_000_000)
            .default("0")
            .help("Requests in flight allowed to one backend; beyond it requests go to \
                another backend or get 503; 0 means no limit"),
        /// Weights follow latency and failures (round-robin, random).
        adaptive_weights: bool = adaptive_weights: bool => switch("adaptive-weights", false)
            .on("Lower the weight of a backend slower than its pool or failing, and \
                restore it gradually (round-robin and random pools)")
            .shown("off"),
        /// Ramp time after a backend returns (zero: off).
        slow_start: Duration = slow_start: String =>
            text("slow-start", "DURATION", parse_duration_or_off)
                .default("0s")
                .help("Ramp a backend that comes back (or is added) from a sixteenth of its \
                    weight to all of it over this time; 0s is off"),
        /// Retries on another backend.
        retries: u32 = retries: i64 => number("retries", "N", 0..=10)
            .default("2")
            .help("Retries of a request on another backend, when nothing of the answer \
                has reached the client: after a connect failure (any method), or a reset, \
                close or --response-timeout before the answer (idempotent methods only)"),
        /// Retries per request allowed, in percent.
        retry_budget_percent: u32 = retry_budget: String => percent("retry-budget", "20%")
            .help("Retries allowed as a share of recent requests (plus 3 a second per \
                worker), so an outage does not become a retry storm"),
    }

    /// Where discovered backends are resolved, and how often (`crate::discovery`).
    reload struct DiscoveryTiming {
        /// The shortest time between two resolutions of a name.
        dns_min_ttl: Duration = dns_min_ttl: String => duration("dns-min-ttl", "1s")
            .help("A discovered DNS name is resolved again when its records' TTL runs out, \
                but never sooner than this"),
        /// The longest.
        dns_max_ttl: Duration = dns_max_ttl: String => duration("dns-max-ttl", "300s")
            .help("... and never later than this"),
        /// How long the last good set outlives NXDOMAIN or an empty answer.
        dns_hold: Duration = dns_hold: String => duration("dns-hold", "30s")
            .help("After NXDOMAIN or an empty answer a discovered pool keeps its last good \
                backends this long, then empties (a failure or timeout keeps them for good)"),
        /// DNS servers asked; empty: those of `/etc/resolv.conf`.
        resolvers: Vec<SocketAddr> = resolver: Vec<String> =>
            list("resolver", "ADDR[:PORT]", parse_resolver)
                .shown("the nameservers of /etc/resolv.conf")
                .help("DNS server that discovered names are resolved through; repeat for \
                    more"),
    }

    /// Who may change state through the admin API.
    reload struct AdminAuth {
        /// Required as `Authorization: Bearer` by state-changing admin calls.
        admin_token: Option<String> = admin_token: String =>
            text("admin-token", "TOKEN", parse_token)
                .help("Bearer token required by admin calls that change state; also read \
                    from CORELB_ADMIN_TOKEN")
                .optional("none: such calls are allowed from loopback only")
                .or_computed(token_from_env),
        /// Names the admin API answers to besides its own address,
        /// loopback addresses and `localhost` (canonical, see
        /// [`super::operations::canonical_host`]).
        admin_hosts: Vec<String> = admin_host: Vec<String> =>
            list("admin-host", "NAME", parse_admin_host)
                .shown("none: only the admin address, loopback addresses and localhost")
                .help("Host name (or address) the admin API also answers to, as the `Host` \
                    of a request; repeat for more. Other names are refused, so that a web \
                    page cannot reach the API through DNS rebinding"),
    }

    /// What every TLS listener shares; the file named is read again on reload.
    reload struct TlsSessions {
        /// Session-ticket keys shared with other processes (`None`: keys
        /// made at start and rotated, this process only).
        ticket_keys: Option<PathBuf> = tls_ticket_keys: String =>
            text("tls-ticket-keys", "FILE", parse_path)
                .help("File of TLS session-ticket keys, base64, one a line (48 or 80 bytes, \
                    as HAProxy's `tls-ticket-keys`): the first encrypts new tickets, every \
                    one decrypts; processes sharing the file resume each other's sessions. \
                    Read again on reload")
                .optional("none: keys made at start, rotated every 6 hours, this process only"),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::config::cli::Cli;
    use crate::config::Config;

    #[test]
    fn every_flag_is_its_file_key_with_dashes() {
        for spec in specs() {
            assert_eq!(spec.flag, spec.key.replace('_', "-"), "{spec:?}");
        }
    }

    #[test]
    fn help_names_every_flag_and_quotes_its_default() {
        let help = Cli::command().render_help().to_string();
        for spec in specs() {
            let quoted = format!("[default: {}]", spec.default);
            assert!(help.contains(&quoted), "{quoted} missing:\n{help}");
            assert!(help.contains(spec.help), "{} missing:\n{help}", spec.help);
        }
    }

    #[test]
    fn restart_only_settings_are_the_process_group() {
        let restart: Vec<_> = specs()
            .into_iter()
            .filter(|s| !s.reloadable)
            .map(|s| s.flag)
            .collect();
        assert_eq!(
            restart,
            [
                "threads",
                "pin",
                "accept-steering",
                "io-driver",
                "backlog",
                "admin",
                "admin-header-timeout",
                "log-level",
                "log-format",
                "access-log",
                "access-log-format",
                "shutdown-timeout",
            ]
        );
    }

    #[test]
    fn restart_only_changes_name_their_flags() {
        let load = |args: &[&str]| {
            let mut argv = vec!["corelb", "--backend", "127.0.0.1:1"];
            argv.extend_from_slice(args);
            Config::load(&Cli::parse_from(argv)).unwrap()
        };
        let old = load(&[]);
        let new = load(&[
            "--listen",
            "127.0.0.1:2",
            "--no-pin",
            "--connect-timeout",
            "1s",
            "--access-log",
            "-",
        ]);
        assert_eq!(
            old.restart_only_changes(&new),
            ["listen", "pin", "access-log"]
        );
        assert!(old
            .restart_only_changes(&load(&["--retries", "0"]))
            .is_empty());
    }

    #[test]
    fn flags_after_the_subcommand_count_and_huge_numbers_are_out_of_range() {
        let cli = Cli::parse_from(["corelb", "demo", "--connect-timeout", "5s", "--no-pin"]);
        assert_eq!(cli.settings.connect_timeout.as_deref(), Some("5s"));
        assert_eq!(cli.settings.pin.as_deref(), Some("false"));
        let cli = Cli::parse_from([
            "corelb",
            "--backend",
            "127.0.0.1:1",
            "--max-body-size",
            "18446744073709551615",
        ]);
        let e = Config::load(&cli).unwrap_err().0;
        assert_eq!(
            e,
            "invalid value `18446744073709551615` for --max-body-size: \
             must be from 0 to 9223372036854775807"
        );
    }

    #[test]
    fn response_timeout_defaults_to_the_upstream_timeout() {
        let cli = Cli::parse_from([
            "corelb",
            "--backend",
            "127.0.0.1:1",
            "--upstream-timeout",
            "7s",
        ]);
        let timeouts = Config::load(&cli).unwrap().settings.timeouts;
        assert_eq!(timeouts.response, Duration::from_secs(7));
    }
}
