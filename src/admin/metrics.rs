//! `GET /metrics`: every counter in the Prometheus text exposition format
//! (version 0.0.4), summed over workers at scrape time.
//!
//! Each family is declared once in `FAMILIES` (name, type, help, and how
//! its samples are read from one `Scrape`) and [`render`] writes them
//! all in one loop, in that order; how the text is laid out is
//! `exposition.rs`'s business.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::exposition::{Family, Kind, Label};
use crate::control::discovered::SourceReport;
use crate::control::Control;
use crate::resilience::weights;
use crate::snapshot::{Pool, Snapshot};
use crate::state::backend::{Backend, BackendState, ResilienceCounters};
use crate::state::metrics::{HistogramCounts, STATUS_CLASSES};
use crate::state::outcome::{
    BackendCounters, Failure, Generated, HandshakeFailure, ListenerCounts, TimeoutKind,
    UpstreamTlsFailure, WorkerMetrics, GENERATED_STATUSES, H2_ERROR_CODES,
};

/// What one scrape reads: the configuration in use and every counter.
struct Scrape<'s> {
    control: &'s Control,
    snapshot: &'s Snapshot,
    workers: Vec<&'s WorkerMetrics>,
    /// Every backend once: a server in two pools is one backend, and its
    /// own counters are shown once.
    backends: Vec<&'s Arc<Backend>>,
    /// Each discovery source's last resolution and counts.
    discovery: Vec<SourceReport>,
}

impl Scrape<'_> {
    /// One sample per discovery source that has a value.
    fn per_source(&self, f: &mut Family<'_>, get: impl Fn(&SourceReport) -> Option<f64>) {
        for r in &self.discovery {
            if let Some(v) = get(r) {
                f.sample(&[("pool", &r.pool), ("source", &r.source)], v);
            }
        }
    }

    /// A worker counter summed over workers.
    fn total(&self, get: impl Fn(&WorkerMetrics) -> u64) -> u64 {
        self.workers.iter().map(|w| get(w)).sum()
    }

    /// One sample per listener, labelled with its address and protocol
    /// (`http` or `https`): one of its counts summed over workers.
    fn per_listener(&self, f: &mut Family<'_>, get: fn(&ListenerCounts) -> u64) {
        for (i, (addr, protocol)) in self.control.info.listeners.iter().enumerate() {
            let n: u64 = self
                .workers
                .iter()
                .filter_map(|w| w.by_listener.get(i))
                .map(get)
                .sum();
            f.sample(&[("listener", addr), ("protocol", protocol)], n);
        }
    }

    /// One sample per worker, labelled with its number.
    fn per_worker<V: Display>(&self, f: &mut Family<'_>, get: impl Fn(&WorkerMetrics) -> V) {
        for (i, w) in self.workers.iter().enumerate() {
            f.sample(&[("worker", &i)], get(w));
        }
    }

    /// One sample per named part, each a worker counter summed over
    /// workers, labelled `label="part"`.
    fn split(&self, f: &mut Family<'_>, label: &'static str, parts: &[(&str, WorkerCount)]) {
        for (part, get) in parts {
            f.sample(&[(label, part)], self.total(get));
        }
    }

    /// `write` for every backend of every pool, with its pool: a server in
    /// two pools twice, once per pool entry.
    fn per_entry(&self, f: &mut Family<'_>, write: EntrySamples) {
        for pool in &self.snapshot.pools {
            for b in &pool.backends {
                write(self.snapshot, pool, b, f);
            }
        }
    }

    /// A histogram per backend (each once), labelled with its address:
    /// `get` of each worker's counters, summed.
    fn per_backend_histogram(
        &self,
        f: &mut Family<'_>,
        get: fn(&BackendCounters) -> HistogramCounts,
    ) {
        for b in &self.backends {
            let mut h = HistogramCounts::default();
            b.stats().all_counters().for_each(|c| h.add(&get(c)));
            f.histogram(&[("backend", &b.addr)], &h);
        }
    }

    /// One sample per backend (each once), labelled with its address.
    fn per_backend<V: Display>(&self, f: &mut Family<'_>, get: impl Fn(&Backend) -> V) {
        for b in &self.backends {
            f.sample(&[("backend", &b.addr)], get(b));
        }
    }
}

/// A worker counter, read.
type WorkerCount = fn(&WorkerMetrics) -> u64;

/// A backend's counter summed over workers.
fn backend_total(b: &Backend, get: impl Fn(&BackendCounters) -> u64) -> u64 {
    b.stats().all_counters().map(get).sum()
}

/// A backend's resilience counter.
fn resilience(b: &Backend, get: impl Fn(&ResilienceCounters) -> &AtomicU64) -> u64 {
    get(&b.stats().resilience).load(Ordering::Relaxed)
}

/// One metric family, declared once.
struct Spec {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    samples: Samples,
}

/// How a family's samples are read from a [`Scrape`].
enum Samples {
    /// By a function of its own.
    Read(fn(&Scrape<'_>, &mut Family<'_>)),
    /// One sample per part: `label="part"`, a worker counter summed over
    /// workers.
    Split {
        label: &'static str,
        parts: &'static [(&'static str, WorkerCount)],
    },
    /// Samples of each pool entry (a backend in a pool).
    PerEntry(EntrySamples),
    /// Samples of each backend (once, though it may be in several pools).
    EachBackend(fn(&Backend, &mut Family<'_>)),
    /// A histogram per backend (each once), summed over workers.
    BackendHistogram(fn(&BackendCounters) -> HistogramCounts),
}

/// A pool entry's samples, read from the configuration in use, the pool
/// and the backend.
type EntrySamples = fn(&Snapshot, &Pool, &Backend, &mut Family<'_>);

use Samples::{BackendHistogram, EachBackend, PerEntry, Read, Split};

/// Every family, in the order of the exposition.
const FAMILIES: &[Spec] = &[
    Spec {
        name: "corelb_build_info",
        kind: Kind::Gauge,
        help: "Version and io driver of this corelb.",
        samples: Read(|s, f| {
            let info = &s.control.info;
            f.sample(
                &[
                    ("version", &info.version),
                    ("driver", &info.driver),
                    ("threads", &info.threads),
                ],
                1,
            );
        }),
    },
    Spec {
        name: "corelb_uptime_seconds",
        kind: Kind::Gauge,
        help: "Seconds since start.",
        samples: Read(|s, f| f.sample(&[], s.control.info.started.elapsed().as_secs_f64())),
    },
    Spec {
        name: "corelb_config_generation",
        kind: Kind::Gauge,
        help: "Generation of the configuration in use.",
        samples: Read(|s, f| f.sample(&[], s.snapshot.generation)),
    },
    Spec {
        name: "corelb_reloads_total",
        kind: Kind::Counter,
        help: "Configuration reloads, by result.",
        samples: Read(|s, f| {
            let c = s.control;
            f.sample(&[("result", &"ok")], c.reloads_ok.load(Ordering::Relaxed));
            f.sample(&[("result", &"failed")], c.reloads_failed.load(Ordering::Relaxed));
        }),
    },
    Spec {
        name: "corelb_discovery_resolutions_total",
        kind: Kind::Counter,
        help: "Resolutions of each discovery source (DNS name, SRV name, backends file), \
            by result: ok, failed, nxdomain, empty, invalid.",
        samples: Read(|s, f| {
            for r in &s.discovery {
                for (result, n) in &r.counts {
                    let labels: [Label<'_>; 3] =
                        [("pool", &r.pool), ("source", &r.source), ("result", result)];
                    f.sample(&labels, n);
                }
            }
        }),
    },
    Spec {
        name: "corelb_discovery_last_resolution_timestamp_seconds",
        kind: Kind::Gauge,
        help: "When each discovery source was last resolved or read (Unix time).",
        samples: Read(|s, f| {
            s.per_source(f, |r| {
                let at = r.at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                Some(at.as_secs_f64())
            })
        }),
    },
    Spec {
        name: "corelb_discovery_ttl_seconds",
        kind: Kind::Gauge,
        help: "TTL of each DNS source's last answer, as used (clamped to the min/max TTL).",
        samples: Read(|s, f| s.per_source(f, |r| r.ttl.map(|t| t.as_secs_f64()))),
    },
    Spec {
        name: "corelb_discovery_backends",
        kind: Kind::Gauge,
        help: "Backends each discovery source gives its pool now.",
        samples: Read(|s, f| s.per_source(f, |r| Some(r.backends as f64))),
    },
    Spec {
        name: "corelb_backend_origin",
        kind: Kind::Gauge,
        help: "1 for each backend of each pool, labelled with where it came from: \
            static, dns, srv or file.",
        samples: Read(|s, f| {
            for pool in &s.snapshot.pools {
                for b in &pool.backends {
                    let origin = b.origin().as_str();
                    let labels: [Label<'_>; 3] =
                        [("pool", &pool.name), ("backend", &b.addr), ("origin", &origin)];
                    f.sample(&labels, 1);
                }
            }
        }),
    },
    Spec {
        name: "corelb_connections_accepted_total",
        kind: Kind::Counter,
        help: "Client connections accepted, per worker.",
        samples: Read(|s, f| s.per_worker(f, |w| w.accepted.get())),
    },
    Spec {
        name: "corelb_listener_connections_total",
        kind: Kind::Counter,
        help: "Client connections accepted, by listener address and protocol (https: TLS).",
        samples: Read(|s, f| s.per_listener(f, |l| l.accepted.get())),
    },
    Spec {
        name: "corelb_listener_requests_total",
        kind: Kind::Counter,
        help: "Requests answered, by the listener address and protocol (https: TLS) they came in on.",
        samples: Read(|s, f| s.per_listener(f, |l| l.requests.get())),
    },
    Spec {
        name: "corelb_connections_open",
        kind: Kind::Gauge,
        help: "Client connections open, per worker.",
        samples: Read(|s, f| s.per_worker(f, |w| w.open.get())),
    },
    Spec {
        name: "corelb_tunnels_open",
        kind: Kind::Gauge,
        help: "Client connections upgraded to a tunnel (WebSocket, ...) and open, per worker.",
        samples: Read(|s, f| s.per_worker(f, |w| w.tunnels_open.get())),
    },
    Spec {
        name: "corelb_connections_refused_total",
        kind: Kind::Counter,
        help: "Client connections closed at once, by reason: per_ip, the client address had --max-connections-per-ip open.",
        samples: Split {
            label: "reason",
            parts: &[("per_ip", |w| w.refused_per_ip.get())],
        },
    },
    Spec {
        name: "corelb_tls_handshakes_total",
        kind: Kind::Counter,
        help: "TLS handshakes on TLS listeners, by result: ok, or why they failed (timeout: --tls-handshake-timeout; closed: the client left; protocol: not TLS, or nothing in common; io).",
        samples: Read(|s, f| {
            f.sample(&[("result", &"ok")], s.total(|w| w.tls_handshakes.get()));
            for why in HandshakeFailure::ALL {
                let count = s.total(|w| w.tls_handshake_failures[why as usize].get());
                f.sample(&[("result", &why.as_str())], count);
            }
        }),
    },
    Spec {
        name: "corelb_tls_refused_total",
        kind: Kind::Counter,
        help: "TLS connections closed at once because their worker had its maximum of handshakes in progress.",
        samples: Read(|s, f| f.sample(&[], s.total(|w| w.tls_refused.get()))),
    },
    Spec {
        name: "corelb_upstream_tls_failures_total",
        kind: Kind::Counter,
        help: "TLS handshakes with backends (pools with tls = true) that failed, each a connect failure, by reason: certificate (did not verify), handshake, timeout (--connect-timeout), closed.",
        samples: Read(|s, f| {
            for why in UpstreamTlsFailure::ALL {
                let count = s.total(|w| w.upstream_tls_failures[why as usize].get());
                f.sample(&[("reason", &why.as_str())], count);
            }
        }),
    },
    Spec {
        name: "corelb_h2_connections_total",
        kind: Kind::Counter,
        help: "HTTP/2 client connections (TLS with ALPN h2, or h2c) past their preface and settings.",
        samples: Read(|s, f| f.sample(&[], s.total(|w| w.h2_connections.get()))),
    },
    Spec {
        name: "corelb_h2_streams_total",
        kind: Kind::Counter,
        help: "HTTP/2 streams taken, by result: ok (forwarded as a request), malformed (reset with PROTOCOL_ERROR at once).",
        samples: Read(|s, f| {
            f.sample(&[("result", &"ok")], s.total(|w| w.h2_streams.get()));
            f.sample(&[("result", &"malformed")], s.total(|w| w.h2_malformed.get()));
        }),
    },
    Spec {
        name: "corelb_h2_connection_errors_total",
        kind: Kind::Counter,
        help: "HTTP/2 connections ended by an error, ours or the client's GOAWAY, by its code (enhance_your_calm: a flood or rapid reset; protocol_error, frame_size_error, compression_error, flow_control_error: a broken or hostile client).",
        samples: Read(|s, f| {
            for (i, code) in H2_ERROR_CODES.iter().enumerate() {
                f.sample(&[("reason", code)], s.total(|w| w.h2_errors[i].get()));
            }
        }),
    },
    Spec {
        name: "corelb_tls_certificate_expiry_seconds",
        kind: Kind::Gauge,
        help: "Seconds until each TLS listener's certificate expires (negative once it has), by listener address and certificate file.",
        samples: Read(|s, f| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            for (acceptor, (addr, _)) in s.control.acceptors.iter().zip(&s.control.info.listeners) {
                let Some(acceptor) = acceptor else { continue };
                for cert in &acceptor.resolver().current().certificates {
                    let labels: [Label<'_>; 2] = [("listener", addr), ("certificate", &cert.cert_path)];
                    f.sample(&labels, cert.not_after - now);
                }
            }
        }),
    },
    Spec {
        name: "corelb_responses_total",
        kind: Kind::Counter,
        help: "Responses to clients, relayed or generated, by status class.",
        samples: Read(|s, f| {
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                f.sample(&[("class", class)], s.total(|w| w.responses[c].get()));
            }
        }),
    },
    Spec {
        name: "corelb_generated_responses_total",
        kind: Kind::Counter,
        help: "Responses corelb answered itself, by status and reason.",
        samples: Read(|s, f| {
            // The statuses counted one by one, then the rest as `other`.
            let statuses = GENERATED_STATUSES.len() + 1;
            for reason in Generated::ALL {
                for i in 0..statuses {
                    let n = s.total(|w| w.generated[reason as usize][i].get());
                    let status: &dyn Display = match GENERATED_STATUSES.get(i) {
                        Some(code) => code,
                        None => &"other",
                    };
                    if n > 0 {
                        f.sample(&[("status", status), ("reason", &reason.as_str())], n);
                    }
                }
            }
        }),
    },
    Spec {
        name: "corelb_client_bytes_total",
        kind: Kind::Counter,
        help: "Bytes from and to clients.",
        samples: Split {
            label: "direction",
            parts: &[("in", |w| w.bytes_in.get()), ("out", |w| w.bytes_out.get())],
        },
    },
    Spec {
        name: "corelb_upstream_pool_total",
        kind: Kind::Counter,
        help: "Tries that reused a pooled upstream connection (hit) or opened one (miss).",
        samples: Split {
            label: "result",
            parts: &[("hit", |w| w.pool_hits.get()), ("miss", |w| w.pool_misses.get())],
        },
    },
    Spec {
        name: "corelb_request_duration_seconds",
        kind: Kind::Histogram,
        help: "Whole requests, head received to response sent.",
        samples: Read(|s, f| {
            let mut all = HistogramCounts::default();
            for w in &s.workers {
                all.add(&w.request_latency.read());
            }
            f.histogram(&[], &all);
        }),
    },
    Spec {
        name: "corelb_timeouts_total",
        kind: Kind::Counter,
        help: "Waits that ran out, by which timeout.",
        samples: Read(|s, f| {
            let by_kind = TimeoutKind::ALL.map(|k| (k.as_str(), s.total(|w| w.timeouts[k as usize].get())));
            for (kind, n) in by_kind {
                f.sample(&[("kind", &kind)], n);
            }
        }),
    },
    Spec {
        name: "corelb_retries_total",
        kind: Kind::Counter,
        help: "Requests sent again to another backend, and retries refused by the retry budget.",
        samples: Split {
            label: "result",
            parts: &[
                ("sent", |w| w.retries.get()),
                ("over_budget", |w| w.retries_over_budget.get()),
            ],
        },
    },
    Spec {
        name: "corelb_requests_total",
        kind: Kind::Counter,
        help: "Responses relayed from backends, by pool, backend and status class.",
        samples: PerEntry(|_, pool, b, f| {
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                let n: u64 = b.entry().all_counters().map(|x| x.responses[c].get()).sum();
                f.sample(&[("pool", &pool.name), ("backend", &b.addr), ("class", class)], n);
            }
        }),
    },
    Spec {
        name: "corelb_backend_state",
        kind: Kind::Gauge,
        help: "1 for the state each backend of each pool is in.",
        samples: PerEntry(|_, pool, b, f| {
            let shown = b.shown_state();
            for state in BackendState::ALL {
                let labels: [Label<'_>; 3] = [
                    ("pool", &pool.name),
                    ("backend", &b.addr),
                    ("state", &state.as_str()),
                ];
                f.sample(&labels, u8::from(shown == state));
            }
        }),
    },
    Spec {
        name: "corelb_backend_weight",
        kind: Kind::Gauge,
        help: "Weight balancers use now, per pool entry, in units of the configured weight.",
        samples: PerEntry(|snapshot, pool, b, f| {
            let resilience = &snapshot.settings.resilience;
            let weight = weights::shown(b.effective_weight(), pool.algorithm, resilience);
            f.sample(&[("pool", &pool.name), ("backend", &b.addr)], weight);
        }),
    },
    Spec {
        name: "corelb_pool_panic",
        kind: Kind::Gauge,
        help: "1 while a pool has so few backends available that ejected ones take traffic again.",
        samples: Read(|s, f| {
            for pool in &s.snapshot.pools {
                let panic = pool.backends.iter().any(|b| b.in_panic());
                f.sample(&[("pool", &pool.name)], u8::from(panic));
            }
        }),
    },
    Spec {
        name: "corelb_backend_inflight",
        kind: Kind::Gauge,
        help: "Requests in flight to each backend, all workers.",
        samples: Read(|s, f| s.per_backend(f, Backend::inflight)),
    },
    Spec {
        name: "corelb_backend_failures_total",
        kind: Kind::Counter,
        help: "Failed tries at each backend, by kind.",
        samples: EachBackend(|b, f| {
            for kind in Failure::ALL {
                let n = backend_total(b, |c| c.failures[kind as usize].get());
                f.sample(&[("backend", &b.addr), ("kind", &kind.as_str())], n);
            }
        }),
    },
    Spec {
        name: "corelb_backend_ejections_total",
        kind: Kind::Counter,
        help: "Times each backend's circuit breaker opened (passive ejection).",
        samples: Read(|s, f| s.per_backend(f, |b| resilience(b, |r| &r.ejections))),
    },
    Spec {
        name: "corelb_backend_health_downs_total",
        kind: Kind::Counter,
        help: "Times active health checks took each backend down.",
        samples: Read(|s, f| s.per_backend(f, |b| resilience(b, |r| &r.health_downs))),
    },
    Spec {
        name: "corelb_health_checks_total",
        kind: Kind::Counter,
        help: "Active health probes of each backend, by result.",
        samples: EachBackend(|b, f| {
            let ok = resilience(b, |r| &r.probes_ok);
            let failed = resilience(b, |r| &r.probes_failed);
            f.sample(&[("backend", &b.addr), ("result", &"ok")], ok);
            f.sample(&[("backend", &b.addr), ("result", &"failed")], failed);
        }),
    },
    Spec {
        name: "corelb_backend_failovers_total",
        kind: Kind::Counter,
        help: "Requests sent to another backend after this one could not be reached.",
        samples: Read(|s, f| s.per_backend(f, |b| backend_total(b, |c| c.failovers.get()))),
    },
    Spec {
        name: "corelb_backend_replays_total",
        kind: Kind::Counter,
        help: "Requests sent again after a pooled connection failed silently.",
        samples: Read(|s, f| s.per_backend(f, |b| backend_total(b, |c| c.replays.get()))),
    },
    Spec {
        name: "corelb_backend_duration_seconds",
        kind: Kind::Histogram,
        help: "Tries at each backend, start to end of the response.",
        samples: BackendHistogram(|c| c.latency.read()),
    },
    Spec {
        name: "corelb_backend_ttfb_seconds",
        kind: Kind::Histogram,
        help: "Start of each try to the backend's response head.",
        samples: BackendHistogram(|c| c.ttfb.read()),
    },
];

/// The whole exposition.
pub fn render(control: &Control) -> String {
    let snapshot = control.shared.snapshot();
    let mut seen = HashSet::new();
    let scrape = Scrape {
        control,
        snapshot: &snapshot,
        workers: control.shared.all_worker_metrics().collect(),
        backends: snapshot
            .pools
            .iter()
            .flat_map(|p| p.backends.iter())
            .filter(|b| seen.insert(b.addr))
            .collect(),
        discovery: control.discovery_reports(),
    };
    let mut out = String::with_capacity(16 * 1024);
    for spec in FAMILIES {
        let mut family = Family::start(&mut out, spec.name, spec.kind, spec.help);
        match spec.samples {
            Read(samples) => samples(&scrape, &mut family),
            Split { label, parts } => scrape.split(&mut family, label, parts),
            PerEntry(write) => scrape.per_entry(&mut family, write),
            EachBackend(write) => scrape.backends.iter().for_each(|b| write(b, &mut family)),
            BackendHistogram(get) => scrape.per_backend_histogram(&mut family, get),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_is_declared_once() {
        let mut names = HashSet::new();
        for spec in FAMILIES {
            assert!(names.insert(spec.name), "{} twice", spec.name);
            assert!(spec.name.starts_with("corelb_"), "{}", spec.name);
            let counter = spec.name.ends_with("_total");
            assert_eq!(counter, spec.kind == Kind::Counter, "{}", spec.name);
        }
    }
}
