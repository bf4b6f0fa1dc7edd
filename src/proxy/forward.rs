//! The upstream half of forwarding: the request's plan picks a backend,
//! a pooled (or new) upstream connection carries the request, the
//! response comes back, and every try's outcome is recorded in one place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use monoio::net::TcpStream;

use super::exchange::{AttemptState, Exchange, Request};
use super::final_head::Response;
use super::upstream::{HeadFailure, SendError};
use crate::error::{ProxyError, Shortage};
use crate::http::BodyProgress;
use crate::plan::ejection::counts_as_failure;
use crate::plan::{FailedTry, Next};
use crate::state::backend::{Backend, InflightGuard};
use crate::state::ewma;
use crate::state::outcome::{AttemptOutcome, TimeoutKind, UpstreamTlsFailure};
use crate::transport::backend::BackendStream;
use crate::transport::tls::connector::TlsConnector;
use crate::transport::Transport;

/// How a try ended, when it did not fail.
enum Tried {
    /// Its answer went to the client.
    Relayed { keep_alive: bool },
    /// Its answer was one the pool retries on, and the plan moved the
    /// request to another backend.
    Elsewhere,
}

impl<T: Transport> Exchange<'_, T> {
    /// Forward one request and its response. `Ok(keep_alive)`.
    ///
    /// The request's [`crate::plan::Plan`] decides each try's backend and
    /// whether a failed try is sent again elsewhere (a backend that could
    /// not be connected to never saw the request: as nginx's
    /// `proxy_next_upstream error`).
    pub(super) async fn forward(&mut self, mut req: Request) -> Result<bool, ProxyError> {
        // The body bytes that came with the head go out in the same write,
        // exactly as they came (chunk framing included: the decoder only
        // checks it and finds where the body ends). Taken once: every
        // attempt below sends this same `out` and continues from this
        // `req_body`, since a failed connect consumed nothing.
        let mut req_body = BodyProgress::new(req.body);
        let limit = &mut req.body_limit;
        let taken = req_body
            .advance(&self.conn.bufs.client_in, |data| limit.count(data))
            .map_err(|e| ProxyError::Downstream {
                status: 400,
                reason: e.reason(),
            })?
            .consumed;
        req.body_limit.check()?;
        self.conn
            .bufs
            .out
            .extend_from_slice(&self.conn.bufs.client_in[..taken]);
        self.conn.bufs.client_in.advance(taken);
        self.outcome.bytes_in += taken as u64;

        loop {
            let guard = req.plan.reserve(&self.worker.routing())?;
            self.conn.logged.backend = Some(guard.backend().addr);
            let started = Instant::now();
            self.attempt = AttemptState::default();
            let result = self
                .forward_to(&mut req, &guard, started, req_body.clone())
                .await;
            self.finish_attempt(&req, guard, started, result.as_ref().err());
            let error = match result {
                Ok(Tried::Relayed { keep_alive }) => return Ok(keep_alive),
                // The plan already moved on to another backend.
                Ok(Tried::Elsewhere) => continue,
                Err(error) => error,
            };
            let failed = FailedTry {
                error,
                response_started: self.response_started,
                answered: self.attempt.status.is_some() || self.attempt.answered,
                replayable: req.idempotent && req_body.is_done(),
            };
            let settings = self.worker.settings();
            let next = req.plan.after_failure(
                &self.worker.routing(),
                &self.worker.retry_budget,
                &settings.resilience,
                failed,
            );
            if let Some(err) = self.count_next(next) {
                return Err(err);
            }
        }
    }

    /// Count the plan's answer in the retry metrics; `Some`: the request
    /// stops here with this error.
    fn count_next(&self, next: Next) -> Option<ProxyError> {
        match next {
            Next::Retry { left } => {
                self.worker.metrics().retries.inc();
                left.stats().counters(self.worker.id).failovers.inc();
                None
            }
            Next::OverBudget(err) => {
                self.worker.metrics().retries_over_budget.inc();
                Some(err)
            }
            Next::Stop(err) => Some(err),
        }
    }

    /// A try answered with a status its pool retries on ([`Response::held`]):
    /// if the plan sends the request elsewhere, the answer is dropped with
    /// its connection (never reused: the backend is likely going away, and
    /// its body need not be read); otherwise it is relayed as any other.
    async fn relay_or_retry(
        &mut self,
        req: &mut Request,
        upstream: BackendStream,
        backend: &Backend,
        mut res: Response,
    ) -> Result<Tried, ProxyError> {
        if res.held {
            let settings = self.worker.settings();
            let next = req.plan.after_answer(
                &self.worker.routing(),
                &self.worker.retry_budget,
                &settings.resilience,
            );
            if matches!(next, Next::Retry { .. }) {
                self.count_next(next);
                return Ok(Tried::Elsewhere);
            }
            self.count_next(next);
            self.release_held(req, &mut res)?;
        }
        let keep_alive = self.relay_response(upstream, backend, res).await?;
        Ok(Tried::Relayed { keep_alive })
    }

    /// The one place a try at a backend is recorded (its counters, its
    /// latency estimate; health and ejection attach here too).
    fn finish_attempt(
        &mut self,
        req: &Request,
        guard: InflightGuard,
        started: Instant,
        error: Option<&ProxyError>,
    ) {
        let now = Instant::now();
        if let Some(ProxyError::LocalResources(shortage)) = error {
            // Not the backend's doing: nothing is recorded against (or
            // for) it, and the breaker's streak is left as it was.
            self.log_local_shortage(*shortage, now);
            return;
        }
        let failure = error.and_then(ProxyError::failure);
        let state = self.attempt;
        match error {
            Some(ProxyError::ConnectTimeout) => {
                self.worker.metrics().timed_out(TimeoutKind::Connect)
            }
            Some(ProxyError::UpstreamTimeout) if state.status.is_none() => {
                self.worker.metrics().timed_out(TimeoutKind::Response)
            }
            Some(ProxyError::UpstreamTimeout) => {
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
        if let (Some(failure), Some(err)) = (failure, error) {
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
        req.plan.record(
            &self.worker.routing(),
            guard.backend(),
            failed,
            &self.worker.settings().resilience,
        );
        guard.finish(self.worker.id, &outcome, ewma::ns_at(now));
    }

    /// Say (rate-limited) that corelb itself ran short, and what to do.
    fn log_local_shortage(&self, shortage: Shortage, now: Instant) {
        if let Some(quiet) = self.worker.shortage_log.allow(now) {
            tracing::error!(
                "{} connecting upstream ({} more on this worker since the last line): {}",
                shortage.as_str(),
                quiet,
                shortage.hint()
            );
        }
    }

    async fn forward_to(
        &mut self,
        req: &mut Request,
        guard: &InflightGuard,
        started: Instant,
        mut req_body: BodyProgress,
    ) -> Result<Tried, ProxyError> {
        let backend = guard.backend();
        // Everything needed to send the request again is in `out`, and
        // sending it twice could not do harm.
        let replayable = req_body.is_done() && req.idempotent;

        let tls = req.plan.tls.as_ref();
        // A connection that began with a PROXY header speaks for one
        // client: never taken from the pool (nor put back, `relay.rs`).
        let pooled = match backend.send_proxy {
            None => self
                .worker
                .pool
                .take(backend.addr, self.worker.deadlines.now())
                // A server in two pools: never the other pool's kind of
                // connection, nor one verified for another CA or name (it
                // is dropped, closed; so are TLS ones made before a reload).
                .filter(|conn| conn.made_for(tls)),
            Some(_) => None,
        };
        let (mut upstream, mut reused) = match pooled {
            Some(conn) => (conn, true),
            None => (Box::pin(self.connect(backend, tls)).await?, false),
        };
        self.attempt.pooled = reused;
        loop {
            match self.send_request(&mut upstream, req, &mut req_body).await {
                Ok(()) => {}
                Err(SendError::Upstream) if reused && replayable => {
                    self.attempt.replayed = true;
                    upstream = Box::pin(self.connect(backend, tls)).await?;
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
                    return match self
                        .read_response_head(&mut upstream, req, false, false)
                        .await
                    {
                        Ok(res) => {
                            self.attempt.ttfb = Some(started.elapsed());
                            let keep_alive = self.relay_response(upstream, backend, res).await?;
                            Ok(Tried::Relayed { keep_alive })
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
            match self
                .read_response_head(&mut upstream, req, true, replayable)
                .await
            {
                Ok(res) => {
                    self.attempt.ttfb = Some(started.elapsed());
                    return self.relay_or_retry(req, upstream, backend, res).await;
                }
                // A pooled connection the backend closed while idle looks
                // exactly like this: nothing came back. The request never
                // reached the application, so sending it again is safe.
                Err(HeadFailure::ClosedEarly) if reused && replayable => {
                    self.attempt.replayed = true;
                    upstream = Box::pin(self.connect(backend, tls)).await?;
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

    /// A new connection to `backend`, begun with its pool's PROXY header
    /// if it wants one, then with its TLS handshake for a pool with `tls`,
    /// all within `--connect-timeout`. A handshake that fails (a
    /// certificate that does not verify, say) is a connect failure,
    /// counted by reason.
    ///
    /// Its callers box it: a new connection is rare next to a pooled one,
    /// and held inline its state (4 KiB with the TLS handshake) would make
    /// every exchange's future that much larger, and each request copies
    /// its exchange's future whole into a slot (`crate::slots`).
    async fn connect(
        &self,
        backend: &Backend,
        tls: Option<&Arc<TlsConnector>>,
    ) -> Result<BackendStream, ProxyError> {
        let timeout = self.worker.settings().timeouts.connect;
        let started = self.worker.deadlines.now();
        let tcp = match monoio::time::timeout(timeout, TcpStream::connect_addr(backend.addr)).await
        {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                if let Some(version) = backend.send_proxy {
                    self.send_proxy_header(&stream, version, timeout).await?;
                }
                stream
            }
            // Out of descriptors, ports or memory here: corelb's fault.
            Ok(Err(e)) => {
                return Err(Shortage::of(&e).map_or(ProxyError::Connect, ProxyError::LocalResources))
            }
            Err(_) => return Err(ProxyError::ConnectTimeout),
        };
        let Some(tls) = tls else {
            return Ok(BackendStream::Plain(tcp));
        };
        let spent = self
            .worker
            .deadlines
            .now()
            .saturating_duration_since(started);
        let left = timeout.saturating_sub(spent);
        let deadlines = &self.worker.deadlines;
        BackendStream::handshake(tcp, tls, &backend.name, backend.addr, deadlines, left)
            .await
            .map_err(|why| {
                self.worker.metrics().upstream_tls_failures[why as usize].inc();
                match why {
                    UpstreamTlsFailure::Timeout => ProxyError::ConnectTimeout,
                    _ => ProxyError::Connect,
                }
            })
    }

    /// Tell the backend whose connection this is: the client's address
    /// (as the PROXY header of its own L4 hop gave it, if any) and the
    /// address it reached corelb at. A failure counts as the connect's.
    async fn send_proxy_header(
        &self,
        upstream: &TcpStream,
        version: crate::proxy_protocol::Version,
        timeout: std::time::Duration,
    ) -> Result<(), ProxyError> {
        let client = SocketAddr::new(self.conn.peer_ip, self.conn.peer_port);
        let local = local_addr(self.conn.client.as_raw_fd()).unwrap_or(client);
        let mut header = [0u8; crate::proxy_protocol::MAX_WRITTEN];
        let len = crate::proxy_protocol::encode(version, client, local, &mut header);
        crate::io::write_shared_timeout(&self.worker.deadlines, upstream, &header[..len], timeout)
            .await
            .map_err(|_| ProxyError::Connect)
    }
}

/// The local address of socket `fd` (where the client reached corelb).
fn local_addr(fd: std::os::fd::RawFd) -> Option<SocketAddr> {
    // SAFETY: `fd` is the client's socket, open for the whole exchange;
    // borrowed for this one call and not closed by it.
    let socket = std::mem::ManuallyDrop::new(unsafe {
        <socket2::Socket as std::os::fd::FromRawFd>::from_raw_fd(fd)
    });
    socket.local_addr().ok()?.as_socket()
}
