//! `GET /metrics`: every counter in the Prometheus text exposition format
//! (version 0.0.4), summed over workers at scrape time.

use std::collections::HashSet;
use std::fmt::Write as _;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::control::Control;
use crate::resilience::weights;
use crate::state::backend::{BackendState, ResilienceCounters};
use crate::state::metrics::{HistogramCounts, LATENCY_BOUNDS_US, STATUS_CLASSES};
use crate::state::outcome::{Failure, Generated, TimeoutKind, GENERATED_STATUSES};

/// Writes families: a `# HELP` and `# TYPE` once per name, then samples.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_label(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], counts: &HistogramCounts) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (i, n) in counts.buckets.iter().enumerate() {
            cumulative += n;
            let le = match LATENCY_BOUNDS_US.get(i) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, counts.sum_us as f64 / 1e6);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// Label values escape `\`, `"` and line feeds.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The whole exposition.
pub fn render(control: &Control) -> String {
    let snapshot = control.shared.snapshot();
    let mut e = Exposition {
        out: String::with_capacity(16 * 1024),
    };
    let info = &control.info;

    e.family(
        "corelb_build_info",
        "gauge",
        "Version and io driver of this corelb.",
    );
    let threads = info.threads.to_string();
    e.sample(
        "corelb_build_info",
        &[
            ("version", info.version),
            ("driver", info.driver),
            ("threads", &threads),
        ],
        1,
    );
    e.family("corelb_uptime_seconds", "gauge", "Seconds since start.");
    e.sample(
        "corelb_uptime_seconds",
        &[],
        info.started.elapsed().as_secs_f64(),
    );
    e.family(
        "corelb_config_generation",
        "gauge",
        "Generation of the configuration in use.",
    );
    e.sample("corelb_config_generation", &[], snapshot.generation);
    e.family(
        "corelb_reloads_total",
        "counter",
        "Configuration reloads, by result.",
    );
    let ok = control
        .reloads_ok
        .load(std::sync::atomic::Ordering::Relaxed);
    let failed = control
        .reloads_failed
        .load(std::sync::atomic::Ordering::Relaxed);
    e.sample("corelb_reloads_total", &[("result", "ok")], ok);
    e.sample("corelb_reloads_total", &[("result", "failed")], failed);

    // Per worker.
    let workers: Vec<_> = control.shared.all_worker_metrics().collect();
    e.family(
        "corelb_connections_accepted_total",
        "counter",
        "Client connections accepted, per worker.",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample(
            "corelb_connections_accepted_total",
            &[("worker", &i.to_string())],
            w.accepted.get(),
        );
    }
    e.family(
        "corelb_connections_open",
        "gauge",
        "Client connections open, per worker.",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample(
            "corelb_connections_open",
            &[("worker", &i.to_string())],
            w.open.get(),
        );
    }
    e.family(
        "corelb_tunnels_open",
        "gauge",
        "Client connections upgraded to a tunnel (WebSocket, ...) and open, per worker.",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample(
            "corelb_tunnels_open",
            &[("worker", &i.to_string())],
            w.tunnels_open.get(),
        );
    }
    e.family(
        "corelb_connections_refused_total",
        "counter",
        "Client connections closed at once, by reason: per_ip, the client address had --max-connections-per-ip open.",
    );
    let refused: u64 = workers.iter().map(|w| w.refused_per_ip.get()).sum();
    e.sample(
        "corelb_connections_refused_total",
        &[("reason", "per_ip")],
        refused,
    );
    e.family(
        "corelb_responses_total",
        "counter",
        "Responses to clients, relayed or generated, by status class.",
    );
    for (c, class) in STATUS_CLASSES.iter().enumerate() {
        let n: u64 = workers.iter().map(|w| w.responses[c].get()).sum();
        e.sample("corelb_responses_total", &[("class", class)], n);
    }
    e.family(
        "corelb_generated_responses_total",
        "counter",
        "Responses corelb answered itself, by status and reason.",
    );
    for reason in Generated::ALL {
        for (s, status) in GENERATED_STATUSES
            .iter()
            .map(|s| s.to_string())
            .chain(["other".to_string()])
            .enumerate()
        {
            let n: u64 = workers
                .iter()
                .map(|w| w.generated[reason as usize][s].get())
                .sum();
            if n > 0 {
                e.sample(
                    "corelb_generated_responses_total",
                    &[("status", &status), ("reason", reason.as_str())],
                    n,
                );
            }
        }
    }
    e.family(
        "corelb_client_bytes_total",
        "counter",
        "Bytes from and to clients.",
    );
    let bytes_in: u64 = workers.iter().map(|w| w.bytes_in.get()).sum();
    let bytes_out: u64 = workers.iter().map(|w| w.bytes_out.get()).sum();
    e.sample(
        "corelb_client_bytes_total",
        &[("direction", "in")],
        bytes_in,
    );
    e.sample(
        "corelb_client_bytes_total",
        &[("direction", "out")],
        bytes_out,
    );
    e.family(
        "corelb_upstream_pool_total",
        "counter",
        "Tries that reused a pooled upstream connection (hit) or opened one (miss).",
    );
    let hits: u64 = workers.iter().map(|w| w.pool_hits.get()).sum();
    let misses: u64 = workers.iter().map(|w| w.pool_misses.get()).sum();
    e.sample("corelb_upstream_pool_total", &[("result", "hit")], hits);
    e.sample("corelb_upstream_pool_total", &[("result", "miss")], misses);
    e.family(
        "corelb_request_duration_seconds",
        "histogram",
        "Whole requests, head received to response sent.",
    );
    let mut all = HistogramCounts::default();
    for w in &workers {
        all.add(&w.request_latency.read());
    }
    e.histogram("corelb_request_duration_seconds", &[], &all);
    e.family(
        "corelb_timeouts_total",
        "counter",
        "Waits that ran out, by which timeout.",
    );
    for kind in TimeoutKind::ALL {
        let n: u64 = workers
            .iter()
            .map(|w| w.timeouts[kind as usize].get())
            .sum();
        e.sample("corelb_timeouts_total", &[("kind", kind.as_str())], n);
    }
    e.family(
        "corelb_retries_total",
        "counter",
        "Requests sent again to another backend, and retries refused by the retry budget.",
    );
    let retries: u64 = workers.iter().map(|w| w.retries.get()).sum();
    let refused: u64 = workers.iter().map(|w| w.retries_over_budget.get()).sum();
    e.sample("corelb_retries_total", &[("result", "sent")], retries);
    e.sample(
        "corelb_retries_total",
        &[("result", "over_budget")],
        refused,
    );

    // Per pool entry and per backend.
    e.family(
        "corelb_requests_total",
        "counter",
        "Responses relayed from backends, by pool, backend and status class.",
    );
    for pool in &snapshot.pools {
        for b in &pool.backends {
            let addr = b.addr.to_string();
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                let n: u64 = b.entry().all_counters().map(|x| x.responses[c].get()).sum();
                e.sample(
                    "corelb_requests_total",
                    &[("pool", &pool.name), ("backend", &addr), ("class", class)],
                    n,
                );
            }
        }
    }
    e.family(
        "corelb_backend_state",
        "gauge",
        "1 for the state each backend of each pool is in.",
    );
    for pool in &snapshot.pools {
        for b in &pool.backends {
            let addr = b.addr.to_string();
            let shown = b.shown_state();
            for state in BackendState::ALL {
                e.sample(
                    "corelb_backend_state",
                    &[
                        ("pool", &pool.name),
                        ("backend", &addr),
                        ("state", state.as_str()),
                    ],
                    u8::from(shown == state),
                );
            }
        }
    }
    e.family(
        "corelb_backend_weight",
        "gauge",
        "Weight balancers use now, per pool entry, in units of the configured weight.",
    );
    let resilience = snapshot.settings.resilience;
    for pool in &snapshot.pools {
        for b in &pool.backends {
            let addr = b.addr.to_string();
            e.sample(
                "corelb_backend_weight",
                &[("pool", &pool.name), ("backend", &addr)],
                weights::shown(b.effective_weight(), pool.algorithm, &resilience),
            );
        }
    }
    e.family(
        "corelb_pool_panic",
        "gauge",
        "1 while a pool has so few backends available that ejected ones take traffic again.",
    );
    for pool in &snapshot.pools {
        let panic = pool.backends.iter().any(|b| b.in_panic());
        e.sample(
            "corelb_pool_panic",
            &[("pool", &pool.name)],
            u8::from(panic),
        );
    }
    // A server in two pools is one backend: its own counters once.
    let mut seen = HashSet::new();
    let backends: Vec<_> = snapshot
        .pools
        .iter()
        .flat_map(|p| p.backends.iter())
        .filter(|b| seen.insert(b.addr))
        .collect();
    e.family(
        "corelb_backend_inflight",
        "gauge",
        "Requests in flight to each backend, all workers.",
    );
    for b in &backends {
        e.sample(
            "corelb_backend_inflight",
            &[("backend", &b.addr.to_string())],
            b.inflight(),
        );
    }
    e.family(
        "corelb_backend_failures_total",
        "counter",
        "Failed tries at each backend, by kind.",
    );
    for b in &backends {
        let addr = b.addr.to_string();
        for f in Failure::ALL {
            let n: u64 = b
                .stats()
                .all_counters()
                .map(|c| c.failures[f as usize].get())
                .sum();
            e.sample(
                "corelb_backend_failures_total",
                &[("backend", &addr), ("kind", f.as_str())],
                n,
            );
        }
    }
    let resilience_counter =
        |e: &mut Exposition,
         name: &str,
         help: &str,
         get: &dyn Fn(&ResilienceCounters) -> &AtomicU64| {
            e.family(name, "counter", help);
            for b in &backends {
                let n = get(&b.stats().resilience).load(Ordering::Relaxed);
                e.sample(name, &[("backend", &b.addr.to_string())], n);
            }
        };
    resilience_counter(
        &mut e,
        "corelb_backend_ejections_total",
        "Times each backend's circuit breaker opened (passive ejection).",
        &|r| &r.ejections,
    );
    resilience_counter(
        &mut e,
        "corelb_backend_health_downs_total",
        "Times active health checks took each backend down.",
        &|r| &r.health_downs,
    );
    e.family(
        "corelb_health_checks_total",
        "counter",
        "Active health probes of each backend, by result.",
    );
    for b in &backends {
        let addr = b.addr.to_string();
        let r = &b.stats().resilience;
        e.sample(
            "corelb_health_checks_total",
            &[("backend", &addr), ("result", "ok")],
            r.probes_ok.load(Ordering::Relaxed),
        );
        e.sample(
            "corelb_health_checks_total",
            &[("backend", &addr), ("result", "failed")],
            r.probes_failed.load(Ordering::Relaxed),
        );
    }
    e.family(
        "corelb_backend_failovers_total",
        "counter",
        "Requests sent to another backend after this one could not be reached.",
    );
    for b in &backends {
        let n: u64 = b.stats().all_counters().map(|c| c.failovers.get()).sum();
        e.sample(
            "corelb_backend_failovers_total",
            &[("backend", &b.addr.to_string())],
            n,
        );
    }
    e.family(
        "corelb_backend_replays_total",
        "counter",
        "Requests sent again after a pooled connection failed silently.",
    );
    for b in &backends {
        let n: u64 = b.stats().all_counters().map(|c| c.replays.get()).sum();
        e.sample(
            "corelb_backend_replays_total",
            &[("backend", &b.addr.to_string())],
            n,
        );
    }
    e.family(
        "corelb_backend_duration_seconds",
        "histogram",
        "Tries at each backend, start to end of the response.",
    );
    for b in &backends {
        let mut h = HistogramCounts::default();
        b.stats()
            .all_counters()
            .for_each(|c| h.add(&c.latency.read()));
        e.histogram(
            "corelb_backend_duration_seconds",
            &[("backend", &b.addr.to_string())],
            &h,
        );
    }
    e.family(
        "corelb_backend_ttfb_seconds",
        "histogram",
        "Start of each try to the backend's response head.",
    );
    for b in &backends {
        let mut h = HistogramCounts::default();
        b.stats().all_counters().for_each(|c| h.add(&c.ttfb.read()));
        e.histogram(
            "corelb_backend_ttfb_seconds",
            &[("backend", &b.addr.to_string())],
            &h,
        );
    }
    e.out
}
