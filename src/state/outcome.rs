//! What became of a request, recorded once, and the per-worker counters it
//! is recorded into.
//!
//! Two hooks, both called from exactly one place of `proxy/`:
//!
//! - a **try** at one backend ends in an [`AttemptOutcome`] (status or
//!   failure, time to first byte, time taken), recorded by
//!   [`crate::state::backend::InflightGuard::finish`] into that backend's counters
//!   for this worker and its latency estimate. Health and ejection attach
//!   here: they need every try, including ones that failed over.
//! - a **request** ends in a [`RequestOutcome`] (the status the client got,
//!   who produced it, bytes, total time), recorded by
//!   [`WorkerMetrics::record_request`] and written to the access log.

use std::time::Duration;

use crate::state::metrics::{class_of, Counter, Gauge, Histogram};

/// Why a try at a backend failed, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The backend refused or reset the connection attempt.
    ConnectRefused,
    /// Connecting took longer than `--connect-timeout`.
    ConnectTimeout,
    /// The backend did not answer (or take the request) in time.
    Timeout,
    /// The backend closed or reset the connection mid-exchange.
    Reset,
    /// The backend answered something corelb cannot relay.
    Protocol,
}

impl Failure {
    /// Every kind, in the order of their counters.
    pub const ALL: [Failure; 5] = [
        Failure::ConnectRefused,
        Failure::ConnectTimeout,
        Failure::Timeout,
        Failure::Reset,
        Failure::Protocol,
    ];

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectRefused => "connect_refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::Protocol => "protocol",
        }
    }
}

/// Why a handshake failed, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HandshakeFailure {
    /// The client did not finish within `--tls-handshake-timeout`.
    Timeout,
    /// The client closed the connection.
    Closed,
    /// The client sent something that is not a TLS handshake corelb can
    /// complete (plaintext HTTP, garbage, no protocol or name in common).
    Protocol,
    /// The socket failed.
    Io,
}

impl HandshakeFailure {
    /// Every kind, in the order of their counters.
    pub const ALL: [HandshakeFailure; 4] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Closed,
        HandshakeFailure::Protocol,
        HandshakeFailure::Io,
    ];

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Protocol => "protocol",
            Self::Io => "io",
        }
    }
}

/// Why a TLS handshake with a backend failed (a connect failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTlsFailure {
    /// Its certificate did not verify (CA, name, dates) or was missing.
    Certificate,
    /// Anything else refused in the handshake (no protocol in common, an
    /// alert, not TLS at all).
    Handshake,
    /// Not finished within `--connect-timeout`.
    Timeout,
    /// The backend closed or reset the connection mid-handshake.
    Closed,
}

impl UpstreamTlsFailure {
    /// Every kind, in the order of their counters.
    pub const ALL: [UpstreamTlsFailure; 4] = [
        UpstreamTlsFailure::Certificate,
        UpstreamTlsFailure::Handshake,
        UpstreamTlsFailure::Timeout,
        UpstreamTlsFailure::Closed,
    ];

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::Handshake => "handshake",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
        }
    }
}

/// Which wait ran out, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// `--connect-timeout`.
    Connect,
    /// `--response-timeout`: no response head in time.
    Response,
    /// `--upstream-timeout`: the backend stalled mid-body or stopped
    /// taking the request.
    UpstreamIdle,
    /// `--client-header-timeout`.
    ClientHeader,
    /// `--client-body-timeout`.
    ClientBody,
    /// `--client-idle-timeout`: a kept-alive connection sent nothing more.
    KeepAlive,
}

impl TimeoutKind {
    /// Every kind, in the order of their counters.
    pub const ALL: [TimeoutKind; 6] = [
        Self::Connect,
        Self::Response,
        Self::UpstreamIdle,
        Self::ClientHeader,
        Self::ClientBody,
        Self::KeepAlive,
    ];

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Response => "response",
            Self::UpstreamIdle => "upstream_idle",
            Self::ClientHeader => "client_header",
            Self::ClientBody => "client_body",
            Self::KeepAlive => "keepalive",
        }
    }
}

/// What one try at a backend came to.
#[derive(Debug, Clone, Copy)]
pub struct AttemptOutcome {
    /// The final response status relayed, if a response head arrived.
    pub status: Option<u16>,
    /// The backend's failure, if it failed.
    pub failure: Option<Failure>,
    /// From the start of the try to the final response head.
    pub ttfb: Option<Duration>,
    /// From the start of the try to its end.
    pub elapsed: Duration,
    /// A pooled connection failed silently and the request was sent again
    /// on a new one.
    pub replayed: bool,
    /// The connection came from the worker's pool (else: a new connect).
    pub pooled: bool,
}

/// One worker's counters for one backend.
#[derive(Debug, Default)]
pub struct BackendCounters {
    /// Final responses relayed, by status class.
    pub responses: [Counter; 5],
    /// Failed tries, by [`Failure`] kind.
    pub failures: [Counter; 5],
    /// Requests sent elsewhere after this backend could not be reached.
    pub failovers: Counter,
    /// Requests sent again after a pooled connection failed silently.
    pub replays: Counter,
    /// Whole tries, start to end of the response.
    pub latency: Histogram,
    /// Start of the try to the response head.
    pub ttfb: Histogram,
}

impl BackendCounters {
    /// Count one try.
    pub fn record(&self, outcome: &AttemptOutcome) {
        if let Some(status) = outcome.status {
            self.responses[class_of(status)].inc();
        }
        if let Some(failure) = outcome.failure {
            self.failures[failure as usize].inc();
        }
        if outcome.replayed {
            self.replays.inc();
        }
        if let Some(ttfb) = outcome.ttfb {
            self.ttfb.observe(ttfb);
        }
        self.latency.observe(outcome.elapsed);
    }
}

/// Why corelb answered a request itself, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generated {
    /// The client sent something corelb will not forward (4xx).
    ClientError,
    /// The backend's answer could not be relayed.
    UpstreamProtocol,
    /// The backend closed or reset the connection.
    UpstreamReset,
    /// The backend did not answer in time.
    UpstreamTimeout,
    /// No backend could be connected to.
    ConnectFailed,
    /// Connecting timed out.
    ConnectTimeout,
    /// No backend was eligible.
    NoBackend,
    /// corelb ran out of its own resources (descriptors, ports, memory)
    /// making the upstream connection: not the backend's fault.
    LocalResources,
    /// The request came back to corelb (our own `Via` token in it).
    LoopDetected,
}

impl Generated {
    /// Every reason, in the order of their counters.
    pub const ALL: [Generated; 9] = [
        Generated::ClientError,
        Generated::UpstreamProtocol,
        Generated::UpstreamReset,
        Generated::UpstreamTimeout,
        Generated::ConnectFailed,
        Generated::ConnectTimeout,
        Generated::NoBackend,
        Generated::LocalResources,
        Generated::LoopDetected,
    ];

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientError => "client_error",
            Self::UpstreamProtocol => "upstream_protocol",
            Self::UpstreamReset => "upstream_reset",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::ConnectFailed => "connect_failed",
            Self::ConnectTimeout => "connect_timeout",
            Self::NoBackend => "no_backend",
            Self::LocalResources => "local_resources",
            Self::LoopDetected => "loop_detected",
        }
    }
}

/// The statuses corelb generates, each with a counter; anything else is
/// counted as `other`.
pub const GENERATED_STATUSES: [u16; 12] =
    [400, 408, 413, 414, 417, 431, 501, 502, 503, 504, 505, 508];

/// The counter index of a generated `status`.
pub fn generated_index(status: u16) -> usize {
    GENERATED_STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(GENERATED_STATUSES.len())
}

/// How a request ended, for metrics and the access log.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOutcome {
    /// The status the client got (0: none, the client went away).
    pub status: u16,
    /// corelb answered itself, and why.
    pub generated: Option<Generated>,
    /// Request bytes read from the client (head and body).
    pub bytes_in: u64,
    /// Response bytes written to the client.
    pub bytes_out: u64,
    /// Time to the first response byte from the chosen backend.
    pub upstream_time: Option<Duration>,
    /// From the first byte of the request to the end of the response.
    pub total_time: Duration,
}

/// One worker's own counters (not per backend).
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// Client connections accepted.
    pub accepted: Counter,
    /// Client connections open now.
    pub open: Gauge,
    /// Of those, upgraded to a tunnel (WebSocket, ...) now.
    pub tunnels_open: Gauge,
    /// Client connections closed at once: their address had
    /// `--max-connections-per-ip` open.
    pub refused_per_ip: Counter,
    /// Requests answered, by status class (relayed or generated).
    pub responses: [Counter; 5],
    /// Responses corelb generated: [reason][status index].
    pub generated: [[Counter; GENERATED_STATUSES.len() + 1]; Generated::ALL.len()],
    /// Request bytes from clients.
    pub bytes_in: Counter,
    /// Response bytes to clients.
    pub bytes_out: Counter,
    /// Upstream connections taken from the pool.
    pub pool_hits: Counter,
    /// Requests that needed a new upstream connection.
    pub pool_misses: Counter,
    /// Whole requests, first byte to end of response.
    pub request_latency: Histogram,
    /// Expired waits, by [`TimeoutKind`].
    pub timeouts: [Counter; 6],
    /// Requests sent again to another backend.
    pub retries: Counter,
    /// Retries not sent because the retry budget was spent.
    pub retries_over_budget: Counter,
    /// TLS handshakes completed.
    pub tls_handshakes: Counter,
    /// TLS handshakes failed, by [`HandshakeFailure`].
    pub tls_handshake_failures: [Counter; 4],
    /// TLS connections closed at once: the worker had its maximum of
    /// handshakes in progress.
    pub tls_refused: Counter,
    /// TLS handshakes with backends failed, by [`UpstreamTlsFailure`].
    pub upstream_tls_failures: [Counter; 4],
    /// Per listener, in listener order (sized at start).
    pub by_listener: Box<[ListenerCounts]>,
    /// HTTP/2 connections past their preface and SETTINGS.
    pub h2_connections: Counter,
    /// HTTP/2 streams taken (each a request).
    pub h2_streams: Counter,
    /// HTTP/2 streams reset at once: malformed requests (connection-
    /// specific fields, ...).
    pub h2_malformed: Counter,
    /// HTTP/2 connections ended by an error (GOAWAY, ours or the
    /// client's), by its code (RFC 9113 §7: 0 to 13).
    pub h2_errors: [Counter; H2_ERROR_CODES.len()],
}

/// One listener's counts on one worker.
#[derive(Debug, Default)]
pub struct ListenerCounts {
    /// Client connections accepted (before any TLS handshake).
    pub accepted: Counter,
    /// Requests answered.
    pub requests: Counter,
}

/// The HTTP/2 error codes (RFC 9113 §7) by number, as metric labels.
pub const H2_ERROR_CODES: [&str; 14] = [
    "no_error",
    "protocol_error",
    "internal_error",
    "flow_control_error",
    "settings_timeout",
    "stream_closed",
    "frame_size_error",
    "refused_stream",
    "cancel",
    "compression_error",
    "connect_error",
    "enhance_your_calm",
    "inadequate_security",
    "http_1_1_required",
];

impl WorkerMetrics {
    /// Counters for a worker serving `listeners` listeners.
    pub fn new(listeners: usize) -> Self {
        Self {
            by_listener: (0..listeners).map(|_| ListenerCounts::default()).collect(),
            ..Self::default()
        }
    }

    /// The counts of listener `index` (none past the listeners counted).
    #[inline]
    pub fn listener(&self, index: u8) -> Option<&ListenerCounts> {
        self.by_listener.get(usize::from(index))
    }

    /// Count an expired wait.
    #[inline]
    pub fn timed_out(&self, kind: TimeoutKind) {
        self.timeouts[kind as usize].inc();
    }
}

impl WorkerMetrics {
    /// Count a finished request.
    pub fn record_request(&self, outcome: &RequestOutcome) {
        if outcome.status != 0 {
            self.responses[class_of(outcome.status)].inc();
            // A tunnel's time is how long it stayed open (hours, for a
            // WebSocket), not how long a request took.
            if outcome.status != 101 {
                self.request_latency.observe(outcome.total_time);
            }
        }
        if let Some(reason) = outcome.generated {
            self.generated[reason as usize][generated_index(outcome.status)].inc();
        }
        self.bytes_in.add(outcome.bytes_in);
        self.bytes_out.add(outcome.bytes_out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_in_counter_order() {
        for (i, f) in Failure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        for (i, g) in Generated::ALL.iter().enumerate() {
            assert_eq!(*g as usize, i);
        }
        for (i, h) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(*h as usize, i);
        }
    }

    #[test]
    fn a_request_is_counted_once_with_its_bytes() {
        let m = WorkerMetrics::default();
        m.record_request(&RequestOutcome {
            status: 503,
            generated: Some(Generated::NoBackend),
            bytes_in: 40,
            bytes_out: 120,
            ..Default::default()
        });
        assert_eq!(m.responses[4].get(), 1);
        assert_eq!(
            m.generated[Generated::NoBackend as usize][generated_index(503)].get(),
            1
        );
        assert_eq!(m.bytes_out.get(), 120);
        assert_eq!(generated_index(418), GENERATED_STATUSES.len());
    }
}
