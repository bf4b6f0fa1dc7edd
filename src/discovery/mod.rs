//! The `corelb-discovery` thread: finds the backends of pools configured
//! with `dns`, `srv` or `backends_file`, and hands every result to the
//! control plane ([`Control::discovered`]), which owns the shared state
//! and publishes a changed set as a new snapshot — the same swap a reload
//! makes. It never writes shared state itself and never runs on a worker.
//!
//! hickory's resolver needs tokio, so this one thread runs a tokio
//! current-thread runtime: one task per source, and a loop that starts
//! and stops tasks as reloads change the sources (and restarts them all
//! when the resolvers or timings change).
//!
//! | file | does |
//! |---|---|
//! | [`hold`] | a DNS answer → the pool's set and the next question's time (pure) |
//! | [`dns`] | asking hickory: A/AAAA of a name, SRV and its targets |
//! | [`file`] | parsing a backends file, watching its directory |

pub mod dns;
pub mod file;
pub mod hold;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::config::discovery::DiscoverySource;
use crate::config::DiscoveryTiming;
use crate::control::Control;
use crate::state::lifecycle::Phase;
use hold::{Answer, Hold};

/// How often the thread looks for sources a reload added or removed.
const CHECK: Duration = Duration::from_secs(1);

/// The longest the first resolution of every source may hold up the start.
const FIRST_PASS: Duration = Duration::from_secs(6);

/// Start the thread, and wait (at most [`FIRST_PASS`]) until every source
/// was resolved or read once: called before the workers start, so that
/// their first snapshot has the discovered backends instead of an empty
/// pool answering 503.
pub fn start(control: Arc<Control>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (_, sources) = control.discovery_sources();
    let handle = spawn(Arc::clone(&control))?;
    let deadline = Instant::now() + FIRST_PASS;
    while control.discovery_reports().len() < sources.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(handle)
}

fn spawn(control: Arc<Control>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("corelb-discovery".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(run(control)),
                Err(e) => warn!("discovery is off: cannot start its runtime: {e}"),
            }
        })
}

type Key = (String, DiscoverySource);

async fn run(control: Arc<Control>) {
    let mut tasks: HashMap<Key, JoinHandle<()>> = HashMap::new();
    let mut timing: Option<DiscoveryTiming> = None;
    // Made when a DNS source first needs it after a change of timing.
    let mut resolver: Option<Result<Arc<TokioResolver>, String>> = None;
    // Sources change only with the config, and every change publishes a
    // snapshot: look again only then (an atomic read, not the lock).
    let mut generation = 0;
    loop {
        if control.shared.lifecycle.phase() == Phase::Stopping {
            tasks.values().for_each(JoinHandle::abort);
            return;
        }
        let now_generation = control.shared.generation();
        if now_generation == generation {
            tokio::time::sleep(CHECK).await;
            continue;
        }
        generation = now_generation;
        let (now_timing, sources) = control.discovery_sources();
        if timing.as_ref() != Some(&now_timing) {
            tasks.drain().for_each(|(_, task)| task.abort());
            resolver = None;
            timing = Some(now_timing.clone());
        }
        tasks.retain(|key, task| {
            let keep = sources.contains(key);
            if !keep {
                task.abort();
            }
            keep
        });
        for key in sources {
            if tasks.contains_key(&key) {
                continue;
            }
            let (pool, source) = key.clone();
            let control = Arc::clone(&control);
            let task = match &source {
                DiscoverySource::File { path } => {
                    let path = path.clone();
                    tokio::spawn(async move { follow_file(&control, &pool, &source, &path).await })
                }
                _ => {
                    let resolver = resolver
                        .get_or_insert_with(|| {
                            dns::resolver(&now_timing).map(Arc::new).inspect_err(|e| {
                                warn!("DNS discovery cannot resolve: {e}");
                            })
                        })
                        .clone();
                    let timing = now_timing.clone();
                    tokio::spawn(async move {
                        follow_dns(&control, &pool, &source, resolver, &timing).await
                    })
                }
            };
            tasks.insert(key, task);
        }
        tokio::time::sleep(CHECK).await;
    }
}

/// Resolve `source` again and again, each time when its TTL runs out.
async fn follow_dns(
    control: &Control,
    pool: &str,
    source: &DiscoverySource,
    resolver: Result<Arc<TokioResolver>, String>,
    timing: &DiscoveryTiming,
) {
    let mut hold = Hold::default();
    loop {
        let answer = match &resolver {
            Err(why) => Answer::Failed { why: why.clone() },
            Ok(resolver) => {
                let question = ask(resolver, source);
                tokio::time::timeout(dns::QUESTION_TIMEOUT, question)
                    .await
                    .unwrap_or_else(|_| Answer::Failed {
                        why: "no answer in time".into(),
                    })
            }
        };
        let (resolution, wait) = hold.step(answer, Instant::now(), timing);
        control.discovered(pool, source, resolution);
        tokio::time::sleep(wait).await;
    }
}

async fn ask(resolver: &TokioResolver, source: &DiscoverySource) -> Answer {
    match source {
        DiscoverySource::Dns { name, port, weight } => {
            dns::lookup_name(resolver, name, *port, *weight).await
        }
        DiscoverySource::Srv { name } => dns::lookup_srv(resolver, name).await,
        DiscoverySource::File { .. } => Answer::Failed {
            why: "not a DNS source".into(),
        },
    }
}

/// Read the backends file at `path` now, on every change in its
/// directory, and every [`file::POLL`] regardless.
async fn follow_file(control: &Control, pool: &str, source: &DiscoverySource, path: &Path) {
    let (wake, mut woken) = mpsc::unbounded_channel();
    let watcher = file::watch(path, wake)
        .inspect_err(|e| warn!("pool {pool}: {e}; reading it every {:?}", file::POLL))
        .ok();
    loop {
        control.discovered(pool, source, file::read(path));
        if watcher.is_some() {
            let _ = tokio::time::timeout(file::POLL, woken.recv()).await;
            // A rename or a symlink swap is several events: read once.
            tokio::time::sleep(file::SETTLE).await;
            while woken.try_recv().is_ok() {}
        } else {
            tokio::time::sleep(file::POLL).await;
        }
    }
}
