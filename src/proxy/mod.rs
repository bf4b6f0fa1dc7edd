//! The client connection loop: read a request head, pick a backend, forward
//! the request on a pooled upstream connection, stream the response back,
//! and go round again while both sides keep the connection alive.
//!
//! This module is the only place where the protocol (pure, in
//! [`crate::http`]) meets sockets: `mod.rs` has the connection loop and the
//! choice of backend, [`upstream`] sends the request and reads the response
//! head, [`relay`] streams the response back. Requests on one connection are handled strictly in order, which
//! is what makes pipelining correct: the bytes of request N+1 simply wait in
//! the read buffer while request N is answered.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;

use crate::access_log::Entry;
use crate::backend::{Backend, InflightGuard};
use crate::buffers::BufferPool;
use crate::deadline::Deadlines;
use crate::error::{write_error_response, ProxyError};
use crate::ewma;
use crate::http::rewrite::{write_request_head_upgrading, ClientAddr};
use crate::http::upgrade::Protocol;
use crate::http::{head, parse_request, BodyKind, BodyProgress, RequestHead, MAX_HEADERS};
use crate::io::{
    make_room, read_idle_timeout, read_some_timeout, readable_idle_timeout, release_if_oversized,
    reset_on_close, write_all_timeout, write_range_timeout, ReadError,
};
use crate::outcome::{AttemptOutcome, Failure, Generated, RequestOutcome, TimeoutKind};
use crate::resilience::breaker::counts_as_failure;
use crate::worker::{Choice, Worker};

mod body_limit;
mod relay;
mod tunnel;
mod upstream;

use upstream::{HeadFailure, SendError};

/// Per-connection buffers may keep up to this many times `--buffer-size`
/// between requests (64 KiB by default: 16 KiB bodies keep their one-read
/// buffer of 32 KiB, larger bodies give theirs back).
const RETAINED_BUFFERS: usize = 4;

/// The three buffers a client connection uses while an exchange is in
/// flight. An idle connection holds none: they come from the worker's
/// [`BufferPool`] when its bytes arrive and go back when the exchange ends.
struct Buffers {
    /// Bytes read from the client not yet handled (may hold pipelined requests).
    client_in: BytesMut,
    /// Bytes read from the backend.
    upstream_in: BytesMut,
    /// Heads being written (plus the first body bytes, so one write carries both).
    out: BytesMut,
}

impl Buffers {
    /// None held (no allocation).
    fn none() -> Self {
        Self {
            client_in: BytesMut::new(),
            upstream_in: BytesMut::new(),
            out: BytesMut::new(),
        }
    }

    /// Take from `pool` each buffer not held.
    fn acquire(&mut self, pool: &BufferPool, size: usize) {
        for buf in [&mut self.client_in, &mut self.upstream_in, &mut self.out] {
            if buf.capacity() == 0 {
                *buf = pool.take(size);
            }
        }
    }

    /// Give every buffer back to `pool` (what they hold is dropped); those
    /// grown past `keep` bytes are let go instead.
    fn release(&mut self, pool: &BufferPool, keep: usize) {
        for buf in [&mut self.client_in, &mut self.upstream_in, &mut self.out] {
            pool.give(std::mem::take(buf), keep);
        }
    }
}

/// What the request head said, once parsed; owned, so it lives across awaits.
struct Request {
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
    is_head: bool,
    /// RFC 9110 §9.2.2: may be sent again if a reused connection failed
    /// before any answer.
    idempotent: bool,
    http11: bool,
    choice: Choice,
    /// The protocol the request asks to switch to, when its pool lets the
    /// ask through to the backend.
    upgrade: Option<Protocol>,
    /// What the pool lets the body weigh, and what it weighed so far.
    body_limit: body_limit::BodyLimit,
}

/// Outcome of reading the next request head.
enum NextRequest {
    /// A request is ready (its head is in `out`, rewritten).
    Ready(Request),
    /// The client closed or went idle between requests: end quietly.
    Closed,
}

/// How a finished exchange leaves the connection.
enum After {
    /// Keep it for the next request.
    KeepAlive,
    /// Close it gently (see [`linger`]).
    Close,
    /// The response was cut short: reset, so the client cannot take it
    /// for complete.
    Abort,
    /// The client is gone: just close.
    Gone,
}

/// Serve one client connection until it closes.
///
/// An `async` block rather than an `async fn`, for every idle connection's
/// memory: an `async fn` keeps its arguments twice in its future (as passed,
/// and as moved into its body), where a block uses what it captured in
/// place. The task of each connection is this future.
pub fn serve_client(
    worker: Rc<Worker>,
    mut client: TcpStream,
    peer: SocketAddr,
) -> impl Future<Output = ()> {
    let peer_ip = peer.ip();
    async move {
        let mut bufs = Buffers::none();
        let mut exchange = Exchange {
            worker: &worker,
            client: &mut client,
            peer_ip,
            client_addr: ClientAddr::new(peer_ip),
            bufs: &mut bufs,
            response_started: false,
            answering_head: false,
            started: None,
            outcome: RequestOutcome::default(),
            attempt: AttemptState::default(),
            logged: LoggedHead::default(),
        };
        let after = loop {
            exchange.response_started = false;
            exchange.answering_head = false;
            exchange.started = None;
            exchange.outcome = RequestOutcome::default();
            if !exchange.wait_for_request().await {
                break After::Gone;
            }
            // Reading the head and the exchange run in blocks of the worker's:
            // an idle connection's task need not be as large as their state
            // (`crate::slots`).
            let result = match worker.head_slots.run(exchange.next_request()).await {
                Ok(NextRequest::Ready(req)) => {
                    worker.exchange_slots.run(exchange.forward(req)).await
                }
                Ok(NextRequest::Closed) => break After::Gone,
                Err(e) => Err(e),
            };
            let after = match result {
                Ok(true) => After::KeepAlive,
                Ok(false) => After::Close,
                // Even when the client is the one that failed: a client that
                // stopped reading (write timeout) is still there, and with a
                // close-delimited body a FIN would tell it the body is complete.
                // The reset also discards the FIN our timed-out write queued.
                Err(_) if exchange.response_started => After::Abort,
                // Boxed, as rare paths (an error answer, the close): their
                // state need not sit in every idle connection's task either.
                Err(err) => Box::pin(exchange.answer_error(&err)).await,
            };
            exchange.finish_request();
            let keep = RETAINED_BUFFERS * worker.settings().buffer_size;
            match after {
                // Idle until the next request: hold no buffer meanwhile.
                After::KeepAlive if exchange.bufs.client_in.is_empty() => {
                    exchange.bufs.release(&worker.buffers, keep);
                }
                After::KeepAlive => {
                    // A pipelined request is here already. A large gathered
                    // body grew these; the connection should not keep that.
                    release_if_oversized(&mut exchange.bufs.upstream_in, keep);
                    release_if_oversized(&mut exchange.bufs.out, keep);
                }
                other => break other,
            }
        };
        match after {
            After::Abort => reset_on_close(&client),
            After::Close => {
                Box::pin(linger(&worker.deadlines, &mut client, &mut bufs.client_in)).await
            }
            After::Gone | After::KeepAlive => {}
        }
        bufs.release(
            &worker.buffers,
            RETAINED_BUFFERS * worker.settings().buffer_size,
        );
    }
}

/// Close gently: stop sending, then read and discard what the client may
/// still be sending (pipelined requests after `Connection: close`, the body
/// of a refused request) until it closes too, for a short while. Closing a
/// socket with unread input makes the kernel send RST, and an RST can
/// destroy the end of the last response before the client has read it.
async fn linger(deadlines: &Deadlines, client: &mut TcpStream, buf: &mut BytesMut) {
    const LINGER_TIME: Duration = Duration::from_secs(1);
    const LINGER_BYTES: usize = 256 * 1024;
    if client.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        buf.clear();
        make_room(buf, 16 * 1024);
        let room = buf.capacity();
        let left = deadline.saturating_duration_since(Instant::now());
        match read_some_timeout(deadlines, client, buf, room, left).await {
            Ok(n) if n > 0 => discarded += n,
            _ => return,
        }
    }
}

/// What the current try at a backend has come to so far.
#[derive(Debug, Default, Clone, Copy)]
struct AttemptState {
    status: Option<u16>,
    ttfb: Option<Duration>,
    replayed: bool,
    pooled: bool,
    /// The backend sent something (an interim response counts): the
    /// request reached it, and `out` no longer holds it.
    answered: bool,
}

/// The parts of the request head the access log writes, copied out of the
/// read buffer (which the body then reuses). The buffer is kept, so this
/// allocates nothing per request once grown.
#[derive(Debug, Default)]
struct LoggedHead {
    bytes: Vec<u8>,
    // Where each part is in `bytes`. `u32`s, not `usize` ranges: this sits
    // in every connection's task, idle ones too, and a head is far shorter.
    method: Span,
    target: Span,
    referer: Span,
    user_agent: Span,
    minor_version: u8,
    backend: Option<SocketAddr>,
}

/// `start..end` in a [`LoggedHead`]'s bytes.
#[derive(Debug, Default, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl LoggedHead {
    fn push(&mut self, part: &[u8]) -> Span {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(part);
        Span {
            start,
            end: self.bytes.len() as u32,
        }
    }

    fn text(&self, span: Span) -> &[u8] {
        &self.bytes[span.start as usize..span.end as usize]
    }

    /// Copy what the log needs from `req`.
    fn capture(&mut self, req: &RequestHead<'_, '_>) {
        self.bytes.clear();
        self.method = self.push(req.method.as_bytes());
        self.target = self.push(req.target.as_bytes());
        let value = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map_or(&b""[..], |h| h.value)
        };
        self.referer = self.push(value("referer"));
        self.user_agent = self.push(value("user-agent"));
        self.minor_version = req.minor_version;
        self.backend = None;
    }

    /// A request that never parsed: nothing to show but dashes.
    fn clear(&mut self) {
        self.bytes.clear();
        self.method = Span::default();
        self.target = Span::default();
        self.referer = Span::default();
        self.user_agent = Span::default();
        self.minor_version = 1;
        self.backend = None;
    }
}

struct Exchange<'a> {
    worker: &'a Worker,
    client: &'a mut TcpStream,
    peer_ip: IpAddr,
    /// `peer_ip` as text, for `X-Forwarded-For`.
    client_addr: ClientAddr,
    bufs: &'a mut Buffers,
    /// Some of the response went to the client: an error now can only close.
    response_started: bool,
    /// The request being answered is a HEAD: an error answer has no body.
    answering_head: bool,
    /// When the current request's head was complete.
    started: Option<Instant>,
    /// What the current request has come to so far.
    outcome: RequestOutcome,
    /// What the current try has come to so far.
    attempt: AttemptState,
    /// The head fields of the current request, for the access log.
    logged: LoggedHead,
}

impl Exchange<'_> {
    /// Send `out` (a head, perhaps with body bytes) to the client.
    async fn send_out(&mut self) -> Result<(), ProxyError> {
        let len = self.bufs.out.len() as u64;
        write_all_timeout(
            &self.worker.deadlines,
            self.client,
            &mut self.bufs.out,
            self.worker.settings().timeouts.client_idle,
        )
        .await
        .map_err(|_| ProxyError::ClientGone)?;
        self.outcome.bytes_out += len;
        Ok(())
    }

    /// Answer `err` with corelb's own response, if the client is there.
    async fn answer_error(&mut self, err: &ProxyError) -> After {
        let Some(status) = err.status() else {
            return After::Close;
        };
        self.outcome.status = status;
        self.outcome.generated = Generated::of(err);
        self.bufs.out.clear();
        write_error_response(&mut self.bufs.out, err, self.answering_head);
        match self.send_out().await {
            Ok(()) => After::Close,
            Err(_) => After::Gone,
        }
    }

    /// The one place a request's outcome is recorded: this worker's
    /// metrics, and the access log.
    fn finish_request(&mut self) {
        let Some(started) = self.started else {
            // Nothing parsed: a head too large or malformed is still a
            // request answered, and counted; a silent close is not.
            if self.outcome.status == 0 {
                return;
            }
            self.logged.clear();
            self.started = Some(Instant::now());
            return self.finish_request();
        };
        self.outcome.total_time = started.elapsed();
        self.worker.metrics().record_request(&self.outcome);
        if let Some(log) = &self.worker.access_log {
            if self.outcome.status != 0 {
                let l = &self.logged;
                log.record(&Entry {
                    client: self.peer_ip,
                    method: or_dash(l.text(l.method)),
                    target: or_dash(l.text(l.target)),
                    minor_version: l.minor_version,
                    status: self.outcome.status,
                    bytes_out: self.outcome.bytes_out,
                    referer: l.text(l.referer),
                    user_agent: l.text(l.user_agent),
                    backend: l.backend,
                    upstream_time: self.outcome.upstream_time,
                    total_time: self.outcome.total_time,
                });
            }
        }
    }

    /// Wait, holding no buffer, until the client's next request begins to
    /// arrive (at once if pipelined bytes are here), then take the
    /// buffers. `false`: it closed or stayed idle too long; end quietly.
    async fn wait_for_request(&mut self) -> bool {
        if self.bufs.client_in.is_empty() {
            let idle = self.worker.settings().timeouts.client_idle;
            match readable_idle_timeout(&self.worker.deadlines, self.client, idle).await {
                Ok(()) => {}
                Err(ReadError::Timeout) => {
                    self.worker.metrics().timed_out(TimeoutKind::KeepAlive);
                    return false;
                }
                Err(ReadError::Io(_)) => return false,
            }
        }
        let size = self.worker.settings().buffer_size;
        self.bufs.acquire(&self.worker.buffers, size);
        true
    }

    /// Read until a whole request head is buffered, then parse it, pick a
    /// backend and write the forwarded head into `out`.
    async fn next_request(&mut self) -> Result<NextRequest, ProxyError> {
        let cfg = self.worker.settings();
        let mut header_deadline: Option<Instant> = None;
        // Bytes already searched for the end of the head: a head trickled in
        // byte by byte is parsed once at its end, not after every read
        // (which would be quadratic work for the sender's linear effort).
        let mut searched = 0;
        loop {
            if has_head_end(&self.bufs.client_in, searched) {
                if let Some(req) = self.prepare()? {
                    return Ok(NextRequest::Ready(req));
                }
            }
            // Bytes no request line can start with (a TLS ClientHello on
            // the plain port): answer 400 now, not at the header timeout.
            head::check_request_start(&self.bufs.client_in)?;
            searched = self.bufs.client_in.len();
            if searched >= cfg.buffer_size {
                return Err(head::oversized_request(&self.bufs.client_in).into());
            }
            // Empty lines before a request line are ignored (RFC 9112
            // 2.2; old clients send one after a POST body): still idle.
            let idle = header_deadline.is_none()
                && self
                    .bufs
                    .client_in
                    .iter()
                    .all(|&b| b == b'\r' || b == b'\n');
            let timeout = match header_deadline {
                None if idle => cfg.timeouts.client_idle,
                None => {
                    header_deadline = Some(Instant::now() + cfg.timeouts.client_header);
                    cfg.timeouts.client_header
                }
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            };
            let deadlines = &self.worker.deadlines;
            let room = cfg.buffer_size - self.bufs.client_in.len();
            make_room(&mut self.bufs.client_in, cfg.buffer_size);
            let buf = &mut self.bufs.client_in;
            let read = if idle {
                // A drain closes connections waiting here (see
                // `Deadlines::start_drain`).
                read_idle_timeout(deadlines, self.client, buf, room, timeout).await
            } else {
                read_some_timeout(deadlines, self.client, buf, room, timeout).await
            };
            match read {
                Ok(0) | Err(ReadError::Io(_)) => return Ok(NextRequest::Closed),
                // A client that stalls mid-head gets no answer: it is either
                // gone or hostile (slowloris), and a 408 helps neither.
                Err(ReadError::Timeout) => {
                    let kind = if idle {
                        TimeoutKind::KeepAlive
                    } else {
                        TimeoutKind::ClientHeader
                    };
                    self.worker.metrics().timed_out(kind);
                    return Ok(NextRequest::Closed);
                }
                // The header deadline starts once bytes are here; it is
                // set above only if the head turns out to be incomplete,
                // which saves a clock read on the common one-read head.
                Ok(_) => {}
            }
        }
    }

    /// Parse the buffered head; if complete, route it, pick a backend and
    /// write the upstream head into `out`. Synchronous: the parsed head
    /// borrows the buffer and must not live across an await.
    fn prepare(&mut self) -> Result<Option<Request>, ProxyError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Some(req) = parse_request(&self.bufs.client_in, &mut headers)? else {
            return Ok(None);
        };
        self.answering_head = req.is_head();
        self.started = Some(Instant::now());
        self.outcome.bytes_in = req.len as u64;
        if self.worker.access_log.is_some() {
            self.logged.capture(&req);
        }
        let choice = self
            .worker
            .pick(req.host_name(), req.path(), self.peer_ip, &req)
            .ok_or(ProxyError::NoBackend)?;
        self.logged.backend = Some(choice.backend.addr);
        let body_limit = body_limit::BodyLimit::new(choice.max_body_size, req.body)?;
        let upgrade = req
            .upgrade
            .filter(|_| choice.upgrade)
            .and_then(Protocol::new);
        let out = &mut self.bufs.out;
        out.clear();
        write_request_head_upgrading(
            out,
            &req,
            &self.client_addr,
            choice.backend.name.as_bytes(),
            upgrade.as_ref().map(Protocol::as_bytes),
        );
        let prepared = Request {
            body: req.body,
            keep_alive: req.keep_alive,
            expect_continue: req.expect_continue,
            is_head: req.is_head(),
            idempotent: matches!(
                req.method,
                "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
            ),
            http11: req.minor_version == 1,
            choice,
            upgrade,
            body_limit,
        };
        let len = req.len;
        self.bufs.client_in.advance(len);
        Ok(Some(prepared))
    }

    /// Forward one request and its response. `Ok(keep_alive)`.
    ///
    /// A backend that cannot be connected to never saw the request, so the
    /// request goes to another backend of the pool (up to
    /// `CONNECT_ATTEMPTS` in all), as nginx's `proxy_next_upstream error`.
    async fn forward(&mut self, mut req: Request) -> Result<bool, ProxyError> {
        // The body bytes that came with the head go out in the same write,
        // exactly as they came (chunk framing included: the decoder only
        // checks it and finds where the body ends). Taken once: every
        // attempt below sends this same `out` and continues from this
        // `req_body`, since a failed connect consumed nothing.
        let mut req_body = BodyProgress::new(req.body);
        let limit = &mut req.body_limit;
        let taken = req_body
            .advance(&self.bufs.client_in, |data| limit.count(data))
            .map_err(|e| ProxyError::Downstream {
                status: 400,
                reason: e.reason(),
            })?
            .consumed;
        req.body_limit.check()?;
        self.bufs
            .out
            .extend_from_slice(&self.bufs.client_in[..taken]);
        self.bufs.client_in.advance(taken);
        self.outcome.bytes_in += taken as u64;

        let mut backend = Arc::clone(&req.choice.backend);
        let mut retries = 0;
        // The error of the try before, while a retry is under way.
        let mut failed_try = None;
        loop {
            let Some(guard) = self.reserve_slot(&req.choice, &mut backend, failed_try.is_none())
            else {
                return Err(failed_try.unwrap_or(ProxyError::NoBackend));
            };
            let started = Instant::now();
            self.attempt = AttemptState::default();
            let result = self
                .forward_to(&req, &guard, started, req_body.clone())
                .await;
            self.finish_attempt(&req.choice, guard, started, &result);
            let Err(err) = result else {
                return result;
            };
            if !self.may_retry(&err, &req, &req_body, retries) {
                return Err(err);
            }
            let Some(other) = self.worker.pick_other(&req.choice, &backend) else {
                return Err(err);
            };
            // A refused connect cost the backend nothing and the retry
            // costs the next one what the request would have anyway; the
            // budget is for retries that add load (timeouts, resets).
            let free = matches!(err, ProxyError::Connect);
            if !free
                && !self.worker.retry_budget.try_retry(
                    self.worker.settings().resilience.retry_ratio(),
                    Instant::now(),
                )
            {
                self.worker.metrics().retries_over_budget.inc();
                return Err(err);
            }
            self.worker.metrics().retries.inc();
            backend.stats().counters(self.worker.id).failovers.inc();
            backend = other;
            self.logged.backend = Some(backend.addr);
            retries += 1;
            failed_try = Some(err);
        }
    }

    /// An in-flight slot on `backend` within `--max-requests`. The balancer
    /// saw one free, but another core may have taken the last since: a
    /// first try then moves to another backend of the pool; a retry does
    /// not (the other could be the one that just failed). `None`: no slot.
    fn reserve_slot(
        &mut self,
        choice: &Choice,
        backend: &mut Arc<Backend>,
        first_try: bool,
    ) -> Option<InflightGuard> {
        if let Some(guard) = backend.try_start_request() {
            return Some(guard);
        }
        if !first_try {
            return None;
        }
        let other = self.worker.pick_other(choice, backend)?;
        let guard = other.try_start_request()?;
        self.logged.backend = Some(other.addr);
        *backend = other;
        Some(guard)
    }

    /// May a request whose try failed with `err` go to another backend?
    /// Only while nothing of the answer reached the client, within
    /// `--retries`; after a failed connect always (the backend never saw
    /// the request), after a reset, close or response timeout before the
    /// answer only if the method is idempotent and the whole request is
    /// still at hand in `out` (its body did not stream past it).
    fn may_retry(
        &self,
        err: &ProxyError,
        req: &Request,
        req_body: &BodyProgress,
        retries: u32,
    ) -> bool {
        if self.response_started || retries >= self.worker.settings().resilience.retries {
            return false;
        }
        if err.is_connect_failure() {
            return true;
        }
        let before_answer = self.attempt.status.is_none() && !self.attempt.answered;
        let lost_in_transit = matches!(
            err,
            ProxyError::UpstreamClosed(_) | ProxyError::UpstreamTimeout
        );
        lost_in_transit && before_answer && req.idempotent && req_body.is_done()
    }

    /// The one place a try at a backend is recorded (its counters, its
    /// latency estimate; health and ejection attach here too).
    fn finish_attempt(
        &mut self,
        choice: &Choice,
        guard: InflightGuard,
        started: Instant,
        result: &Result<bool, ProxyError>,
    ) {
        let now = Instant::now();
        let failure = result.as_ref().err().and_then(Failure::of);
        let state = self.attempt;
        match result {
            Err(ProxyError::ConnectTimeout) => {
                self.worker.metrics().timed_out(TimeoutKind::Connect)
            }
            Err(ProxyError::UpstreamTimeout) if state.status.is_none() => {
                self.worker.metrics().timed_out(TimeoutKind::Response)
            }
            Err(ProxyError::UpstreamTimeout) => {
                self.worker.metrics().timed_out(TimeoutKind::UpstreamIdle)
            }
            _ => {}
        }
        if state.pooled {
            self.worker.metrics().pool_hits.inc();
        } else {
            self.worker.metrics().pool_misses.inc();
        }
        if let Some(status) = state.status {
            self.outcome.status = status;
        }
        self.outcome.upstream_time = state.ttfb;
        let outcome = AttemptOutcome {
            // A response cut short mid-body is the backend's failure, even
            // though its head arrived.
            status: state.status.filter(|_| failure.is_none()),
            failure,
            ttfb: state.ttfb,
            // A tunnel's try is over at its `101`: the hours it then stays
            // open say nothing of the backend's speed.
            elapsed: match (state.status, state.ttfb) {
                (Some(101), Some(ttfb)) => ttfb,
                _ => now.saturating_duration_since(started),
            },
            replayed: state.replayed,
            pooled: state.pooled,
        };
        if let (Some(failure), Err(err)) = (failure, result) {
            if let Some(quiet) = self.worker.failure_log.allow(now) {
                let more = if quiet > 0 {
                    format!(" ({quiet} more backend failures on this worker since the last line)")
                } else {
                    String::new()
                };
                tracing::warn!(
                    "backend {}: {} ({err}){more}",
                    guard.backend().addr,
                    failure.as_str()
                );
            }
        }
        let failed = counts_as_failure(
            outcome.status,
            failure.is_some(),
            self.worker.settings().resilience.fail_on_5xx,
        );
        self.worker.note_try(choice, guard.backend(), failed);
        guard.finish(self.worker.id, &outcome, ewma::ns_at(now));
    }

    async fn forward_to(
        &mut self,
        req: &Request,
        guard: &InflightGuard,
        started: Instant,
        mut req_body: BodyProgress,
    ) -> Result<bool, ProxyError> {
        let backend = guard.backend();
        // Everything needed to send the request again is in `out`, and
        // sending it twice could not do harm.
        let replayable = req_body.is_done() && req.idempotent;

        let (mut upstream, mut reused) = match self
            .worker
            .pool
            .take(backend.addr, self.worker.deadlines.now())
        {
            Some(conn) => (conn, true),
            None => (self.connect(backend.addr).await?, false),
        };
        self.attempt.pooled = reused;
        loop {
            match self.send_request(&mut upstream, req, &mut req_body).await {
                Ok(()) => {}
                Err(SendError::Upstream) if reused && replayable => {
                    self.attempt.replayed = true;
                    upstream = self.connect(backend.addr).await?;
                    reused = false;
                    continue;
                }
                // A timed-out write is never replayed: the backend took
                // part of the request, then stopped taking it.
                Err(
                    failure @ (SendError::Upstream
                    | SendError::UpstreamTimeout
                    | SendError::EarlyAnswer),
                ) => {
                    // The backend may have answered before taking the whole
                    // request (413, 401, ...) and then stopped reading or
                    // closed: relay that answer rather than an error.
                    return match self.read_response_head(&mut upstream, req, false).await {
                        Ok(res) => {
                            self.attempt.ttfb = Some(started.elapsed());
                            self.relay_response(upstream, backend, res).await
                        }
                        Err(HeadFailure::Error(e)) => Err(e),
                        Err(HeadFailure::ClosedEarly) => Err(match failure {
                            SendError::UpstreamTimeout => ProxyError::UpstreamTimeout,
                            _ => ProxyError::UpstreamClosed("backend closed the connection"),
                        }),
                    };
                }
                Err(SendError::Client(e)) => return Err(e),
            }
            match self.read_response_head(&mut upstream, req, true).await {
                Ok(res) => {
                    self.attempt.ttfb = Some(started.elapsed());
                    return self.relay_response(upstream, backend, res).await;
                }
                // A pooled connection the backend closed while idle looks
                // exactly like this: nothing came back. The request never
                // reached the application, so sending it again is safe.
                Err(HeadFailure::ClosedEarly) if reused && replayable => {
                    self.attempt.replayed = true;
                    upstream = self.connect(backend.addr).await?;
                    reused = false;
                }
                Err(HeadFailure::ClosedEarly) => {
                    return Err(ProxyError::UpstreamClosed(
                        "backend closed the connection without answering",
                    ))
                }
                Err(HeadFailure::Error(e)) => return Err(e),
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, ProxyError> {
        let timeout = self.worker.settings().timeouts.connect;
        match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(_)) => Err(ProxyError::Connect),
            Err(_) => Err(ProxyError::ConnectTimeout),
        }
    }
}

fn or_dash(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() {
        b"-"
    } else {
        bytes
    }
}

/// Does `buf` hold the blank line ending a head, looking only at what came
/// after `searched` (plus the two bytes before it, for a line end split
/// across reads)? Finds `\n\r\n` and also `\n\n`, which the parser then
/// refuses as a bare LF rather than waiting for more.
fn has_head_end(buf: &[u8], searched: usize) -> bool {
    let from = searched.saturating_sub(2);
    memchr::memchr_iter(b'\n', &buf[from..]).any(|i| {
        let i = from + i;
        matches!(buf.get(i + 1), Some(b'\n'))
            || (buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n'))
    })
}

/// Write `buf[range]` to `dst`, then drop `buf[..range.end]`, leaving
/// what follows (the next message, or bytes after a body) in place. The
/// bytes are written from `buf` itself, never copied.
async fn forward_range(
    deadlines: &Deadlines,
    dst: &mut TcpStream,
    buf: &mut BytesMut,
    range: Range<usize>,
    timeout: Duration,
) -> std::io::Result<()> {
    if !range.is_empty() {
        write_range_timeout(deadlines, dst, buf, range.clone(), timeout).await?;
    }
    if range.end == buf.len() {
        buf.clear();
    } else {
        buf.advance(range.end);
    }
    Ok(())
}
