//! `corelb demo`: three small backends on loopback and corelb in front.
//!
//! The backends answer every request with their own name, so `curl` shows
//! the rotation; `demo-3` waits 20 ms before answering, so the
//! latency-aware algorithms have something to steer around, and it
//! misbehaves on a schedule ([`mood_at`]): slow, then answering 500, then
//! down, then well again. The demo turns on health checks, adaptive
//! weights and slow start, so the dashboard shows each of them at work.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use monoio::io::AsyncWriteRentExt;
use monoio::net::{TcpListener, TcpStream};

use crate::config::cli::Cli;
use crate::config::{AdminListen, Config, IoDriver};
use crate::control::Control;
use crate::http::{parse_request, BodyProgress, MAX_HEADERS};
use crate::io::{make_room, read_some, read_until};

/// A demo backend's name and how long it thinks before answering.
struct DemoBackend {
    name: &'static str,
    delay: Duration,
    /// Follows the [`mood_at`] schedule.
    misbehaves: bool,
}

/// How the misbehaving backend acts at a moment of its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mood {
    /// Answers as usual.
    Well,
    /// Answers, but after [`SLOW_DELAY`].
    Slow,
    /// Answers `500 Internal Server Error` to everything.
    Failing,
    /// Closes every connection at once, answering nothing.
    Down,
}

/// One turn of the schedule: (mood, how long).
const SCHEDULE: [(Mood, Duration); 4] = [
    (Mood::Well, Duration::from_secs(20)),
    (Mood::Slow, Duration::from_secs(15)),
    (Mood::Failing, Duration::from_secs(15)),
    (Mood::Down, Duration::from_secs(15)),
];

/// How slow "slow" is.
const SLOW_DELAY: Duration = Duration::from_millis(250);

/// The misbehaving backend's mood `elapsed` after the demo started; the
/// schedule repeats.
pub fn mood_at(elapsed: Duration) -> Mood {
    let turn: Duration = SCHEDULE.iter().map(|(_, d)| *d).sum();
    let mut at = Duration::from_nanos((elapsed.as_nanos() % turn.as_nanos()) as u64);
    for (mood, length) in SCHEDULE {
        if at < length {
            return mood;
        }
        at -= length;
    }
    Mood::Well
}

const BACKENDS: [DemoBackend; 3] = [
    DemoBackend {
        name: "demo-1",
        delay: Duration::ZERO,
        misbehaves: false,
    },
    DemoBackend {
        name: "demo-2",
        delay: Duration::ZERO,
        misbehaves: false,
    },
    DemoBackend {
        name: "demo-3",
        delay: Duration::from_millis(20),
        misbehaves: true,
    },
];

/// Start the demo backends on loopback; returns their addresses.
pub fn start_backends() -> Result<Vec<SocketAddr>, String> {
    let mut listeners = Vec::new();
    for _ in &BACKENDS {
        let l =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("demo backend: {e}"))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        listeners.push(l);
    }
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let driver = crate::runtime::resolve_driver(IoDriver::Auto)?;
    std::thread::Builder::new()
        .name("corelb-demo".into())
        .spawn(move || {
            let _ = crate::runtime::block_on_driver(driver, async move {
                let mut tasks = Vec::new();
                let started = Instant::now();
                for (std_listener, spec) in listeners.into_iter().zip(BACKENDS.iter()) {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        continue;
                    };
                    let addr = listener.local_addr().ok();
                    tasks.push(monoio::spawn(serve_backend(listener, spec, addr, started)));
                }
                for t in tasks {
                    t.await;
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(addrs)
}

async fn serve_backend(
    listener: TcpListener,
    spec: &'static DemoBackend,
    addr: Option<SocketAddr>,
    started: Instant,
) {
    let addr = addr.map(|a| a.to_string()).unwrap_or_default();
    let body = format!("hello from {} ({addr})\n", spec.name);
    let response: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: {}\r\nContent-Length: {}\r\n\r\n{body}",
            spec.name,
            body.len()
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    while let Ok((stream, _)) = listener.accept().await {
        let schedule = spec.misbehaves.then_some(started);
        if schedule.is_some_and(|s| mood_at(s.elapsed()) == Mood::Down) {
            continue; // dropped: closed at once
        }
        monoio::spawn(serve_connection(stream, response, spec.delay, schedule));
    }
}

const FAILING_RESPONSE: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
    Content-Length: 22\r\n\r\ndemo-3 is failing now\n";

/// A demo backend's read buffer, and the largest request head it reads.
const BUFFER: usize = 16 * 1024;

/// Does `buf` hold a whole request head, or enough to know it is not one?
fn request_head_is_in(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    !matches!(parse_request(buf, &mut headers), Ok(None))
}

/// Answer each request on the connection with `response`, skipping bodies;
/// with a `schedule` (its start), in the mood of the moment.
async fn serve_connection(
    mut stream: TcpStream,
    response: &'static [u8],
    delay: Duration,
    schedule: Option<Instant>,
) {
    let mut buf = BytesMut::with_capacity(BUFFER);
    loop {
        if read_until(&mut stream, &mut buf, BUFFER, request_head_is_in)
            .await
            .is_err()
        {
            return;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(Some(req)) = parse_request(&buf, &mut headers) else {
            return;
        };
        let (len, body, keep_alive) = (req.len, req.body, req.keep_alive);
        buf.advance(len);
        let mut progress = BodyProgress::new(body);
        loop {
            let Ok(p) = progress.advance(&buf, |_| {}) else {
                return;
            };
            buf.advance(p.consumed);
            if p.done {
                break;
            }
            make_room(&mut buf, BUFFER);
            if !matches!(read_some(&mut stream, &mut buf, BUFFER).await, Ok(n) if n > 0) {
                return;
            }
        }
        let mood = schedule.map_or(Mood::Well, |s| mood_at(s.elapsed()));
        let (delay, answer) = match mood {
            Mood::Well => (delay, response),
            Mood::Slow => (SLOW_DELAY, response),
            Mood::Failing => (delay, FAILING_RESPONSE),
            Mood::Down => return,
        };
        if !delay.is_zero() {
            monoio::time::sleep(delay).await;
        }
        if stream.write_all(answer).await.0.is_err() || !keep_alive {
            return;
        }
    }
}

/// Prepare the demo: its backends started, and the configuration, flags
/// and start-up message of the corelb in front of them, for
/// [`crate::serve::serve`] to run (`main` hands them over, so the demo
/// sits below the process it is served by).
pub fn prepare(cli: &Cli) -> Result<(Config, Cli, Help), String> {
    // Refused rather than ignored: a user who asked for them would believe
    // they had been honoured.
    if cli.check {
        return Err("--check does not apply to the demo: it has no configuration to check".into());
    }
    if !cli.backends.is_empty() {
        return Err("--backend does not apply to the demo: it runs its own three backends".into());
    }
    let addrs = start_backends()?;
    let mut cli = cli.clone();
    cli.backends = addrs.iter().map(|a| a.to_string()).collect();
    // What the misbehaving backend is there to show; flags given win.
    cli.settings
        .health_path
        .get_or_insert_with(|| "/health".into());
    cli.settings
        .health_interval
        .get_or_insert_with(|| "1s".into());
    cli.settings.slow_start.get_or_insert_with(|| "10s".into());
    cli.settings.adaptive_weights = Some("true".into());
    let config = Config::load(&cli).map_err(|e| e.to_string())?;
    let help = Help {
        threads: config.process.threads,
        admin: config.process.admin,
        addrs,
    };
    Ok((config, cli, help))
}

/// What the demo prints once it runs: where corelb listens, the backends
/// and what to try.
pub struct Help {
    threads: usize,
    admin: AdminListen,
    addrs: Vec<SocketAddr>,
}

impl Help {
    /// Print it, once `control` is up (`serve`'s `started`).
    pub fn print(&self, control: &Control) {
        print_help(control, self.threads, self.admin, &self.addrs);
    }
}

fn print_help(control: &Control, threads: usize, admin: AdminListen, addrs: &[SocketAddr]) {
    let url = format!("http://{}/", control.info.listen);
    println!(
        "corelb demo: listening on {} ({threads} workers, {}) in front of",
        control.info.listen, control.info.driver
    );
    for (spec, addr) in BACKENDS.iter().zip(addrs) {
        let note = if spec.delay.is_zero() {
            String::new()
        } else {
            format!(" (answers after {} ms)", spec.delay.as_millis())
        };
        println!("  {} at {addr}{note}", spec.name);
    }
    let turn: Vec<String> = SCHEDULE
        .iter()
        .map(|(mood, d)| {
            let what = match mood {
                Mood::Well => "well".to_string(),
                Mood::Slow => format!("slow ({} ms)", SLOW_DELAY.as_millis()),
                Mood::Failing => "answering 500".to_string(),
                Mood::Down => "down".to_string(),
            };
            format!("{what} {}s", d.as_secs())
        })
        .collect();
    println!(
        "demo-3 misbehaves on a loop: {}. Health checks (GET /health), \
         ejection, adaptive weights and a 10 s slow start keep clients from noticing.",
        turn.join(", then ")
    );
    println!();
    println!("Try it:");
    println!("  curl {url}                # run it a few times: the backends take turns");
    println!("  curl -v {url}             # see the X-Backend header");
    println!("  wrk -t2 -c64 -d10s {url}  # load it");
    match admin {
        AdminListen::Off => {}
        AdminListen::Default(a) | AdminListen::Explicit(a) => {
            println!("  open http://{a}/ in a browser  # the live dashboard: watch demo-3 (if the admin port was free)");
            println!("  curl http://{a}/metrics       # Prometheus metrics");
        }
    }
    println!("Stop with Ctrl-C (drains in-flight requests first).");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_through_every_mood_and_repeats() {
        let at = |s: u64| mood_at(Duration::from_secs(s));
        assert_eq!(at(0), Mood::Well);
        assert_eq!(at(20), Mood::Slow);
        assert_eq!(at(35), Mood::Failing);
        assert_eq!(at(50), Mood::Down);
        assert_eq!(at(65), Mood::Well);
        assert_eq!(at(65 + 51), Mood::Down);
    }
}
