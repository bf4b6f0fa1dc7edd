//! One request's tries: which backend, and what if it fails.
//!
//! The proxy asks a [`Plan`] for the next target ([`Plan::reserve`]),
//! tells it how each try ended ([`Plan::record`]) and, when a try failed
//! or was answered with a status the pool retries on (`retry_on`), asks
//! whether to go on ([`Plan::after_failure`], [`Plan::after_answer`]); it
//! answers *retry there* or *stop*. Everything that decides it is here and nowhere else:
//! the balancers' first pick ([`routing`]), half-open admission, the
//! `--max-requests` slot, failover "not the one that just failed",
//! idempotency, `--retries`, the retry budget ([`retry_budget`]) and
//! tripping a breaker on this core ([`ejection`]). It sends nothing and
//! reads no socket, so the same plan serves any request source.

pub mod ejection;
pub mod retry_budget;
pub mod routing;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::retry_on::RetryOn;
use crate::config::Resilience;
use crate::error::ProxyError;
use crate::http::{path, RequestHead};
use crate::state::backend::{Backend, BackendState, InflightGuard};
use crate::transport::tls::connector::TlsConnector;
use retry_budget::RetryBudget;
use routing::Routing;

/// The tries of one request.
pub struct Plan {
    /// The backend of the current (or next) try.
    backend: Arc<Backend>,
    /// The pool, as an index into the snapshot of `generation`.
    pool: usize,
    generation: u64,
    /// Tries sent again after a failure so far.
    retries: u32,
    /// The error of the try before, while a retry is under way: what the
    /// client gets if no backend is left to try.
    failed_try: Option<ProxyError>,
    /// The pool's limit on request bodies.
    pub max_body_size: Option<u64>,
    /// The statuses the pool retries answers on.
    retry_on: RetryOn,
    /// The request's ask to upgrade goes to the backend.
    pub upgrade: bool,
    /// The pool's TLS to its backends; `None`: plaintext.
    pub tls: Option<Arc<TlsConnector>>,
}

/// What a failed try left behind, as far as retrying is concerned.
#[derive(Debug, Clone, Copy)]
pub struct FailedTry {
    pub error: ProxyError,
    /// Some of the answer already reached the client.
    pub response_started: bool,
    /// The backend answered something (a status, or an interim response).
    pub answered: bool,
    /// Sending the request twice could do no harm: its method is
    /// idempotent (RFC 9110 §9.2.2) and the whole of it is still at hand.
    pub replayable: bool,
}

/// The plan's answer after a failed try.
pub enum Next {
    /// Try again, at [`Plan::backend`]; `left` is the backend that failed.
    Retry { left: Arc<Backend> },
    /// Stop; the client gets this error.
    Stop(ProxyError),
    /// Stop: a retry was allowed but the worker's retry budget is spent.
    OverBudget(ProxyError),
}

impl Plan {
    /// Route the request by its listener, host and `path` (normalised,
    /// see [`crate::http::path`]) and pick its first backend. `Err`: no
    /// backend is eligible (answer 503).
    pub fn start(
        routing: &mut Routing,
        budget: &RetryBudget,
        listener: u8,
        client_ip: IpAddr,
        req: &RequestHead<'_, '_>,
        path: &[u8],
    ) -> Result<Plan, ProxyError> {
        let host = path::route_host(req.host_name());
        let first = routing.pick(listener, host, path, client_ip, req)?;
        budget.on_request();
        let mut plan = Plan {
            backend: first.backend,
            pool: first.pool,
            generation: first.generation,
            retries: 0,
            failed_try: None,
            max_body_size: first.max_body_size,
            retry_on: first.retry_on,
            upgrade: first.upgrade,
            tls: first.tls,
        };
        if !plan.backend.stats().admit() {
            // Half-open, and another core took the last trial permit.
            plan.backend = routing
                .pick_other(plan.pool, plan.generation, &plan.backend)
                .ok_or(ProxyError::NoBackend)?;
        }
        Ok(plan)
    }

    /// The backend of the current try.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// An in-flight slot on the next try's backend, within
    /// `--max-requests`. The balancer saw one free, but another core may
    /// have taken the last since: a first try then moves to another
    /// backend of the pool; a retry does not (the other could be the one
    /// that just failed). `Err`: no slot; the error is the client's answer.
    pub fn reserve(&mut self, routing: &Routing) -> Result<InflightGuard, ProxyError> {
        if let Some(guard) = self.backend.try_start_request() {
            return Ok(guard);
        }
        let no_slot = || self.failed_try.unwrap_or(ProxyError::NoBackend);
        if self.failed_try.is_some() {
            return Err(no_slot());
        }
        let other = routing
            .pick_other(self.pool, self.generation, &self.backend)
            .ok_or_else(no_slot)?;
        let guard = other.try_start_request().ok_or_else(no_slot)?;
        self.backend = other;
        Ok(guard)
    }

    /// Count a finished try against (or for) its backend, and trip the
    /// backend's breaker when this was the failure too many: at once, on
    /// this core, so no more requests go there meanwhile. `failed` by
    /// [`ejection::counts_as_failure`].
    pub fn record(
        &self,
        routing: &Routing,
        backend: &Backend,
        failed: bool,
        settings: &Resilience,
    ) {
        let stats = backend.stats();
        let streak = stats.note_try(failed);
        if !failed {
            return;
        }
        match backend.state() {
            BackendState::HalfOpen => {
                stats.change_state(BackendState::HalfOpen, BackendState::Open, 0);
            }
            BackendState::Up
                if settings.max_fails > 0
                    && streak >= settings.max_fails
                    && routing.may_eject(
                        self.pool,
                        self.generation,
                        settings.max_ejection_percent,
                    ) =>
            {
                stats.change_state(BackendState::Up, BackendState::Open, 0);
            }
            _ => {}
        }
    }

    /// After a failed try: send the request to another backend of the
    /// pool, or stop. Only while nothing of the answer reached the
    /// client, within `--retries`; after a failed connect always (the
    /// backend never saw the request), after a reset, close or response
    /// timeout before any answer only if the request is replayable. A
    /// refused connect costs the next backend nothing more than the
    /// request would have anyway; other retries add load, so they spend
    /// the worker's retry budget.
    pub fn after_failure(
        &mut self,
        routing: &Routing,
        budget: &RetryBudget,
        settings: &Resilience,
        failed: FailedTry,
    ) -> Next {
        let err = failed.error;
        if !may_retry(&failed, self.retries, settings.retries) {
            return Next::Stop(err);
        }
        let free = matches!(err, ProxyError::Connect);
        self.retry_elsewhere(routing, budget, settings, free, err)
    }

    /// Could an answer with `status`, not yet relayed, be sent elsewhere
    /// instead: the pool retries on it (`retry_on`), the request is
    /// `replayable` (see [`FailedTry::replayable`]) and `--retries` is not
    /// used up? Asked as the head arrives, before anything of it is
    /// written for the client; [`Plan::after_answer`] then decides.
    pub fn may_retry_answer(&self, status: u16, replayable: bool, settings: &Resilience) -> bool {
        answer_may_retry(
            self.retry_on,
            status,
            replayable,
            self.retries,
            settings.retries,
        )
    }

    /// After an answer [`Plan::may_retry_answer`] allowed: send the
    /// request to another backend of the pool (spending the retry budget:
    /// the backend did take the request), or stop, and the answer is
    /// relayed as it is (`Stop`'s and `OverBudget`'s error are unused). A
    /// retry that then finds no free slot answers 503 (no backend).
    pub fn after_answer(
        &mut self,
        routing: &Routing,
        budget: &RetryBudget,
        settings: &Resilience,
    ) -> Next {
        self.retry_elsewhere(routing, budget, settings, false, ProxyError::NoBackend)
    }

    /// Move to another backend of the pool than this try's, within the
    /// retry budget unless the retry is `free`; `err` is what the client
    /// gets if none is left.
    fn retry_elsewhere(
        &mut self,
        routing: &Routing,
        budget: &RetryBudget,
        settings: &Resilience,
        free: bool,
        err: ProxyError,
    ) -> Next {
        let Some(other) = routing.pick_other(self.pool, self.generation, &self.backend) else {
            return Next::Stop(err);
        };
        if !free && !budget.try_retry(settings.retry_ratio(), Instant::now()) {
            return Next::OverBudget(err);
        }
        self.retries += 1;
        self.failed_try = Some(err);
        Next::Retry {
            left: std::mem::replace(&mut self.backend, other),
        }
    }
}

/// May a request whose try failed as `failed` say go to another backend,
/// after `retries` retries of at most `max_retries`?
fn may_retry(failed: &FailedTry, retries: u32, max_retries: u32) -> bool {
    if failed.response_started || retries >= max_retries {
        return false;
    }
    if failed.error.is_connect_failure() {
        return true;
    }
    let lost_in_transit = matches!(
        failed.error,
        ProxyError::UpstreamClosed(_) | ProxyError::UpstreamTimeout
    );
    lost_in_transit && !failed.answered && failed.replayable
}

/// May an answer with `status` go unrelayed, and the request to another
/// backend, after `retries` retries of at most `max_retries`? Only for a
/// status of `retry_on` and a replayable request.
fn answer_may_retry(
    retry_on: RetryOn,
    status: u16,
    replayable: bool,
    retries: u32,
    max_retries: u32,
) -> bool {
    replayable && retry_on.contains(status) && retries < max_retries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(error: ProxyError) -> FailedTry {
        FailedTry {
            error,
            response_started: false,
            answered: false,
            replayable: true,
        }
    }

    #[test]
    fn a_failed_connect_is_retried_whatever_the_request() {
        let try_ = FailedTry {
            replayable: false,
            ..failed(ProxyError::Connect)
        };
        assert!(may_retry(&try_, 0, 1));
        assert!(may_retry(&failed(ProxyError::ConnectTimeout), 0, 1));
    }

    #[test]
    fn a_lost_request_is_retried_only_if_replayable_and_unanswered() {
        let lost = ProxyError::UpstreamClosed("x");
        assert!(may_retry(&failed(lost), 0, 1));
        assert!(may_retry(&failed(ProxyError::UpstreamTimeout), 0, 1));
        let not_replayable = FailedTry {
            replayable: false,
            ..failed(lost)
        };
        assert!(!may_retry(&not_replayable, 0, 1));
        let answered = FailedTry {
            answered: true,
            ..failed(lost)
        };
        assert!(!may_retry(&answered, 0, 1));
        assert!(!may_retry(&failed(ProxyError::Upstream("bad")), 0, 1));
    }

    #[test]
    fn nothing_is_retried_past_the_limit_or_once_the_answer_started() {
        assert!(!may_retry(&failed(ProxyError::Connect), 1, 1));
        let started = FailedTry {
            response_started: true,
            ..failed(ProxyError::Connect)
        };
        assert!(!may_retry(&started, 0, 1));
    }

    #[test]
    fn an_answer_is_retried_only_on_its_pools_statuses_within_the_limit() {
        let on = RetryOn::parse_list("502,503,504").unwrap();
        assert!(answer_may_retry(on, 503, true, 0, 1));
        assert!(answer_may_retry(on, 502, true, 1, 2));
        // Off by default, and never for other statuses.
        assert!(!answer_may_retry(RetryOn::default(), 503, true, 0, 1));
        assert!(!answer_may_retry(on, 500, true, 0, 1));
        assert!(!answer_may_retry(on, 200, true, 0, 1));
        // Not a request that could do harm twice, or whose body is gone.
        assert!(!answer_may_retry(on, 503, false, 0, 1));
        // Not past `--retries`: the last try's answer is the client's.
        assert!(!answer_may_retry(on, 503, true, 1, 1));
        assert!(!answer_may_retry(on, 503, true, 0, 0));
    }
}
