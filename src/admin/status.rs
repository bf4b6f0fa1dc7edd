//! `GET /status`: the process, its pools and backends, with the rates,
//! error rates and latency quantiles of the last samples
//! ([`crate::control::history`]).

use serde_json::{json, Value};

use std::sync::atomic::Ordering;

use crate::control::Control;
use crate::resilience::weights;

/// The `/status` document.
pub fn render(control: &Control) -> Value {
    let snapshot = control.shared.snapshot();
    let resilience = snapshot.settings.resilience;
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
        .map(|pool| {
            let backends: Vec<Value> = pool
                .backends
                .iter()
                .map(|b| {
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
                        "state": b.shown_state().as_str(),
                        "weight": b.weight,
                        "effective_weight": weights::shown(b.effective_weight(), pool.algorithm, &resilience),
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
                })
                .collect();
            json!({
                "name": pool.name,
                "algorithm": pool.algorithm.to_string(),
                "panic": pool.backends.iter().any(|b| b.in_panic()),
                "health_path": pool.health_path,
                "backends": backends,
            })
        })
        .collect();
    json!({
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
        },
        "pools": pools,
    })
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
