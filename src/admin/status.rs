//! `GET /status`: the process, its pools and a page of each pool's
//! backends, with the rates, error rates and latency quantiles of the last
//! readings ([`crate::control::history`]).
//!
//! A pool lists its counts and rate (`backends_total`, `backends_up`,
//! `requests_per_second`) over all its backends, but its `backends` array
//! holds one page of detail only, so the document stays small and quick
//! however many backends there are:
//!
//! | query | effect |
//! |---|---|
//! | `pool=NAME` | only that pool (404 if there is none) |
//! | `offset=N` | each pool's page starts at its N-th backend (0 first) |
//! | `limit=N` | backends per pool page, 0 to [`MAX_LIMIT`] ([`DEFAULT_LIMIT`]) |
//! | `backends=0` | no backend detail at all (`limit=0`) |

use serde_json::{json, Value};

use std::sync::atomic::Ordering;

use crate::config::Resilience;
use crate::control::history::History;
use crate::control::Control;
use crate::resilience::weights;
use crate::snapshot::Pool;
use crate::state::backend::Backend;
use crate::state::backend::BackendState;

/// Backends per pool page when the query gives no `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// What a `/status` query asks for.
#[derive(Debug, PartialEq, Eq)]
struct Query {
    pool: Option<String>,
    offset: usize,
    limit: usize,
}

/// Parse `a=1&b=2` (without the `?`); unknown keys and bad numbers are
/// refused, so a mistyped key never silently shows the default.
fn parse_query(query: &str) -> Result<Query, String> {
    let mut q = Query {
        pool: None,
        offset: 0,
        limit: DEFAULT_LIMIT,
    };
    let number = |key: &str, value: &str, max: usize| {
        value
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| format!("{key}: expected a whole number from 0 to {max}, got {value:?}"))
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "pool" => q.pool = Some(super::decode(value)),
            "offset" => q.offset = number(key, value, usize::MAX)?,
            "limit" => q.limit = number(key, value, MAX_LIMIT)?,
            "backends" => match value {
                "0" | "false" => q.limit = 0,
                "1" | "true" => {}
                _ => return Err(format!("backends: expected 0 or 1, got {value:?}")),
            },
            _ => {
                return Err(format!(
                    "unknown query key {key:?} (expected pool, offset, limit, backends)"
                ))
            }
        }
    }
    Ok(q)
}

/// The `/status` document for `query` (the part after `?`), or the status
/// and reason it is refused with.
pub fn render(control: &Control, query: &str) -> Result<Value, (u16, String)> {
    let q = parse_query(query).map_err(|why| (400, why))?;
    let snapshot = control.shared.snapshot();
    let resilience = snapshot.settings.resilience;
    if let Some(name) = &q.pool {
        if !snapshot.pools.iter().any(|p| &p.name == name) {
            return Err((404, format!("no pool named {name:?}")));
        }
    }
    let history = control.history.lock().unwrap_or_else(|e| e.into_inner());
    let (requests_per_second, error_rate) = history.totals();
    let requests: u64 = control
        .shared
        .all_worker_metrics()
        .map(|w| w.responses.iter().map(|r| r.get()).sum::<u64>())
        .sum();
    let pools: Vec<Value> = snapshot
        .pools
        .iter()
        .filter(|p| q.pool.as_ref().is_none_or(|name| &p.name == name))
        .map(|pool| {
            let page = pool.backends.iter().skip(q.offset).take(q.limit);
            let backends: Vec<Value> = page
                .map(|b| backend(pool, b, &history, &resilience))
                .collect();
            let up = pool
                .backends
                .iter()
                .filter(|b| b.shown_state() == BackendState::Up)
                .count();
            let rate: f64 = pool
                .backends
                .iter()
                .map(|b| history.backend_rate(b.addr))
                .sum();
            json!({
                "name": pool.name,
                "algorithm": pool.algorithm.to_string(),
                "panic": pool.backends.iter().any(|b| b.in_panic()),
                "health_path": pool.health_path,
                "backends_total": pool.backends.len(),
                "backends_up": up,
                "requests_per_second": round(rate),
                "offset": q.offset,
                "backends": backends,
            })
        })
        .collect();
    Ok(json!({
        "version": control.info.version,
        "uptime_seconds": round(control.info.started.elapsed().as_secs_f64()),
        "threads": control.info.threads,
        "driver": control.info.driver,
        "generation": snapshot.generation,
        "listen": control.info.listen.to_string(),
        "listeners": listeners(control),
        "totals": {
            "requests": requests,
            "requests_per_second": round(requests_per_second),
            "error_rate": error_rate,
            "open_connections": control.shared.limit.open(),
            "history": history.total_history().into_iter().map(round).collect::<Vec<_>>(),
        },
        "pools": pools,
        "discovery": discovery(control),
    }))
}

/// One backend's detail.
fn backend(pool: &Pool, b: &Backend, history: &History, resilience: &Resilience) -> Value {
    let view = history.backend(b.addr);
    let tries: u64 = b
        .stats()
        .all_counters()
        .map(|c| {
            c.responses.iter().map(|r| r.get()).sum::<u64>()
                + c.failures.iter().map(|f| f.get()).sum::<u64>()
        })
        .sum();
    json!({
        "addr": b.addr.to_string(),
        "name": b.name,
        "origin": b.origin().as_str(),
        "state": b.shown_state().as_str(),
        "weight": b.weight,
        "effective_weight": weights::shown(b.effective_weight(), pool.algorithm, resilience),
        "ejections": b.stats().resilience.ejections.load(Ordering::Relaxed),
        "health_checked": pool.health_path.is_some(),
        "inflight": b.inflight(),
        "requests": tries,
        "requests_per_second": round(view.requests_per_second),
        "error_rate": view.error_rate,
        "p50_ms": view.p50_ms.map(round),
        "p99_ms": view.p99_ms.map(round),
        "history": view.history.iter().map(|&v| round(v)).collect::<Vec<_>>(),
    })
}

/// Each discovery source's last resolution: when, its result (and why,
/// when not `ok`), the TTL used, and the backends it gives its pool.
fn discovery(control: &Control) -> Vec<Value> {
    control
        .discovery_reports()
        .into_iter()
        .map(|r| {
            let at =
                r.at.duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
            json!({
                "pool": r.pool,
                "source": r.source,
                "origin": r.origin.as_str(),
                "last_resolution_unix": round(at.as_secs_f64()),
                "seconds_ago": round(r.at.elapsed().unwrap_or_default().as_secs_f64()),
                "result": r.result,
                "detail": r.detail,
                "ttl_seconds": r.ttl.map(|t| round(t.as_secs_f64())),
                "backends": r.backends,
                "resolutions": r.counts,
            })
        })
        .collect()
}

/// Two decimals are plenty for a person, and keep the document small.
fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Every listener: address, scheme and, for TLS ones, each certificate's
/// names, file and days to expiry.
fn listeners(control: &Control) -> Value {
    let now = std::time::SystemTime::now();
    let list: Vec<Value> = control
        .info
        .listeners
        .iter()
        .zip(&control.acceptors)
        .map(|((addr, scheme), acceptor)| {
            let certificates: Vec<Value> = acceptor.as_ref().map_or_else(Vec::new, |a| {
                a.resolver()
                    .current()
                    .certificates
                    .iter()
                    .map(|c| {
                        json!({
                            "file": c.cert_path,
                            "names": c.names,
                            "expires_in_days": c.remaining(now).as_secs() / 86_400,
                        })
                    })
                    .collect()
            });
            json!({ "address": addr.to_string(), "scheme": scheme, "certificates": certificates })
        })
        .collect();
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_or_say_why_not() {
        assert_eq!(
            parse_query(""),
            Ok(Query {
                pool: None,
                offset: 0,
                limit: DEFAULT_LIMIT
            })
        );
        assert_eq!(
            parse_query("pool=a%20b&offset=40&limit=20"),
            Ok(Query {
                pool: Some("a b".into()),
                offset: 40,
                limit: 20
            })
        );
        assert_eq!(parse_query("backends=0").map(|q| q.limit), Ok(0));
        assert!(parse_query("limit=5000").unwrap_err().contains("0 to 1000"));
        assert!(parse_query("offset=-1").is_err());
        assert!(parse_query("pools=a").unwrap_err().contains("unknown"));
    }
}
