//! The admin API: metrics, status, the dashboard and runtime changes, on a
//! listener of its own served by a thread of its own (`corelb-admin`),
//! never by a worker.
//!
//! | call | does |
//! |---|---|
//! | `GET /` | the live dashboard (one self-contained page) |
//! | `GET /metrics` | Prometheus text exposition |
//! | `GET /status` | JSON: process, totals, pools, a page of backends (`?pool=&offset=&limit=`) |
//! | `POST /reload` | reload the config file, as SIGHUP |
//! | `POST /pools/{pool}/backends` | add a backend: `{"addr": "HOST:PORT", "weight": N}` |
//! | `DELETE /pools/{pool}/backends/{addr}` | remove it (its in-flight requests finish) |
//! | `POST /pools/{pool}/backends/{addr}/drain` | stop sending it new requests |
//! | `POST /pools/{pool}/backends/{addr}/enable` | undo a drain |
//! | `PUT /pools/{pool}/backends/{addr}/weight` | `{"weight": N}` |
//!
//! Every request must name this API in `Host` (its address, a loopback
//! address, `localhost` or an `--admin-host` name), and calls that change
//! state must not come from a web page of another origin and must send
//! `Content-Type: application/json` (`guard.rs` says why). They also need
//! `Authorization: Bearer TOKEN` when a token is configured, and come
//! from loopback otherwise. Errors are JSON (`{"error": "..."}`): 400 bad
//! input, 401 no or wrong token, 403 refused (`Host`, origin, content
//! type, not from loopback), 404 unknown path, pool or backend, 405 wrong
//! method, 408 too slow, 409 already there. A refused call changes
//! nothing.
//!
//! `server.rs` is the admin thread's event loop; this file says what each
//! request gets.

mod exposition;
mod guard;
mod http;
pub mod metrics;
mod server;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};

use crate::config::AdminListen;
use crate::control::api::Change;
use crate::control::Control;
use crate::http::reason_phrase;
use crate::logging::Limiter;
use http::AdminRequest;

/// The dashboard page, served as it is.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Connections waiting to be accepted: room for a burst of them (the
/// event loop takes them at once, up to [`server::MAX_CONNECTIONS`]).
const BACKLOG: i32 = 1024;

/// Bind the admin listener as `admin` says and serve it on a thread of its
/// own, giving each client `header_timeout` to send its request. The
/// default address being taken is a warning; an address the user asked
/// for is an error.
pub fn start(
    admin: AdminListen,
    header_timeout: Duration,
    control: &Arc<Control>,
) -> Result<(), String> {
    let (addr, explicit) = match admin {
        AdminListen::Off => {
            info!("admin API off (--admin off)");
            return Ok(());
        }
        AdminListen::Default(addr) => (addr, false),
        AdminListen::Explicit(addr) => (addr, true),
    };
    let listener = match bind(addr) {
        Ok(l) => l,
        Err(e) if explicit => return Err(format!("cannot listen on {addr} (--admin): {e}")),
        Err(e) => {
            warn!("admin API off: cannot listen on the default {addr} ({e}); give --admin ADDR to choose another");
            return Ok(());
        }
    };
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the admin address: {e}"))?;
    info!("admin API on http://{local}/ (metrics: /metrics, status: /status)");
    let control = Arc::clone(control);
    std::thread::Builder::new()
        .name("corelb-admin".into())
        .spawn(move || server::run(listener, header_timeout, control))
        .map_err(|e| format!("cannot start the admin thread: {e}"))?;
    Ok(())
}

/// A non-blocking listener on `addr`, as `TcpListener::bind` makes one
/// (`SO_REUSEADDR`, no `SO_REUSEPORT`: a second corelb must not share
/// it) but with a [`BACKLOG`] of its own.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, value: serde_json::Value) -> Self {
        let mut body = serde_json::to_vec_pretty(&value).unwrap_or_default();
        body.push(b'\n');
        Self {
            status,
            content_type: "application/json",
            body,
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, json!({ "error": message.into() }))
    }

    /// The whole response, head and body.
    fn into_bytes(self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len()
        );
        if self.status == 401 {
            out.push_str("WWW-Authenticate: Bearer\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

thread_local! {
    /// Refusals are logged (an operator should hear of a page trying its
    /// admin API), but at most one line a second.
    static REFUSALS: Limiter = const { Limiter::new(Duration::from_secs(1)) };
}

/// A 403 for `req`, logged.
fn refuse(req: &AdminRequest, peer: SocketAddr, why: String) -> Answer {
    REFUSALS.with(|limiter| {
        if let Some(quiet) = limiter.allow(Instant::now()) {
            let quiet = match quiet {
                0 => String::new(),
                n => format!(" ({n} more refusals not logged)"),
            };
            warn!(
                "admin API: refused {} {} from {peer}: {why}{quiet}",
                req.method, req.path
            );
        }
    });
    Answer::error(403, why)
}

/// The answer to `req`, which came from `peer` to the local address
/// `local`.
fn respond(req: &AdminRequest, peer: SocketAddr, local: SocketAddr, control: &Control) -> Answer {
    let named = control.admin_auth().admin_hosts;
    match guard::check_host(req.header("host"), local.ip(), &named) {
        Ok(()) => route(req, peer, control),
        Err(why) => refuse(req, peer, why),
    }
}

/// May this caller change state?
fn authorize(req: &AdminRequest, peer: SocketAddr, control: &Control) -> Result<(), Answer> {
    // Host was checked before routing.
    let host = req.header("host").unwrap_or_default();
    let from_page = guard::check_state_change(
        host,
        req.header("origin"),
        req.header("sec-fetch-site"),
        req.header("content-type"),
    );
    if let Err(why) = from_page {
        return Err(refuse(req, peer, why));
    }
    match control.admin_auth().admin_token {
        Some(token) => {
            let given = req.header("authorization").and_then(guard::bearer_token);
            if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                Ok(())
            } else {
                Err(Answer::error(401, "this call needs Authorization: Bearer <admin token>"))
            }
        }
        None if peer.ip().is_loopback() => Ok(()),
        None => Err(Answer::error(
            403,
            "state-changing calls come from loopback only unless an admin token is configured (--admin-token)",
        )),
    }
}

/// Compare without an early exit, so the time taken does not tell how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn route(req: &AdminRequest, peer: SocketAddr, control: &Control) -> Answer {
    let path = req.path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method.as_str();
    let allow = |methods: &[&str]| -> Option<Answer> {
        (!methods.contains(&method)).then(|| {
            Answer::error(
                405,
                format!(
                    "{method} is not allowed on {path}; use {}",
                    methods.join(" or ")
                ),
            )
        })
    };
    match segments.as_slice() {
        [""] => allow(&["GET"]).unwrap_or(Answer {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: DASHBOARD.as_bytes().to_vec(),
        }),
        ["metrics"] => allow(&["GET"]).unwrap_or_else(|| Answer {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics::render(control).into_bytes(),
        }),
        ["status"] => allow(&["GET"]).unwrap_or_else(|| {
            let query = req.path.split_once('?').map_or("", |(_, q)| q);
            match status::render(control, query) {
                Ok(document) => Answer::json(200, document),
                Err((code, why)) => Answer::error(code, why),
            }
        }),
        ["reload"] => allow(&["POST"]).unwrap_or_else(|| {
            changing(req, peer, control, || match control.reload() {
                Ok(message) => {
                    info!("admin API: {message}");
                    Answer::json(
                        200,
                        json!({ "result": message, "generation": control.shared.generation() }),
                    )
                }
                Err(message) => {
                    warn!("admin API: {message}");
                    Answer::error(400, message)
                }
            })
        }),
        ["pools", pool, "backends"] => allow(&["POST"]).unwrap_or_else(|| {
            changing(req, peer, control, || match parse_add(&req.body) {
                Ok(change) => apply(control, pool, "", &change),
                Err(why) => Answer::error(400, why),
            })
        }),
        ["pools", pool, "backends", backend] => allow(&["DELETE"]).unwrap_or_else(|| {
            changing(req, peer, control, || {
                apply(control, pool, &decode(backend), &Change::Remove)
            })
        }),
        ["pools", pool, "backends", backend, action] => {
            let backend = decode(backend);
            match *action {
                "drain" | "enable" => allow(&["POST"]).unwrap_or_else(|| {
                    changing(req, peer, control, || {
                        apply(control, pool, &backend, &Change::Drain(*action == "drain"))
                    })
                }),
                "weight" => allow(&["PUT"]).unwrap_or_else(|| {
                    changing(req, peer, control, || match parse_weight(&req.body) {
                        Ok(weight) => apply(control, pool, &backend, &Change::Weight(weight)),
                        Err(why) => Answer::error(400, why),
                    })
                }),
                _ => Answer::error(404, format!("no such call: {path}")),
            }
        }
        _ => Answer::error(404, format!("no such call: {path}")),
    }
}

/// Run `change` if the caller may change state.
fn changing(
    req: &AdminRequest,
    peer: SocketAddr,
    control: &Control,
    change: impl FnOnce() -> Answer,
) -> Answer {
    match authorize(req, peer, control) {
        Ok(()) => change(),
        Err(refused) => refused,
    }
}

fn apply(control: &Control, pool: &str, backend: &str, change: &Change) -> Answer {
    match control.change(&decode(pool), backend, change) {
        Ok(message) => {
            info!("admin API: {message}");
            Answer::json(
                200,
                json!({ "result": message, "generation": control.shared.generation() }),
            )
        }
        Err(e) => Answer::error(e.status(), e.message()),
    }
}

/// Undo `%XX` escapes in a path segment (`[::1]:80` is often escaped).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn weight_of(map: &serde_json::Map<String, serde_json::Value>) -> Result<Option<u32>, String> {
    match map.get("weight") {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|w| u32::try_from(w).ok())
            .map(Some)
            .ok_or_else(|| format!("weight: expected a whole number from 1 to 10000, got {v}")),
    }
}

fn parse_add(body: &[u8]) -> Result<Change, String> {
    let map = parse_object(body)?;
    if let Some(key) = map.keys().find(|k| *k != "addr" && *k != "weight") {
        return Err(format!("unknown key {key:?} (expected addr, weight)"));
    }
    let addr = map
        .get("addr")
        .and_then(|a| a.as_str())
        .ok_or("addr: expected a string HOST:PORT")?
        .to_string();
    let weight = weight_of(&map)?.unwrap_or(1);
    Ok(Change::Add { addr, weight })
}

fn parse_weight(body: &[u8]) -> Result<u32, String> {
    let map = parse_object(body)?;
    if let Some(key) = map.keys().find(|k| *k != "weight") {
        return Err(format!("unknown key {key:?} (expected weight)"));
    }
    weight_of(&map)?.ok_or_else(|| "weight: missing".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_or_say_why_not() {
        assert_eq!(
            parse_add(br#"{"addr": "127.0.0.1:9003", "weight": 2}"#),
            Ok(Change::Add {
                addr: "127.0.0.1:9003".into(),
                weight: 2
            })
        );
        assert!(parse_add(b"{").unwrap_err().contains("invalid JSON"));
        assert!(parse_add(br#"{"addr": 5}"#).unwrap_err().contains("addr"));
        assert!(parse_add(br#"{"addr": "a:1", "wieght": 2}"#)
            .unwrap_err()
            .contains("unknown key"));
        assert_eq!(parse_weight(br#"{"weight": 5}"#), Ok(5));
        assert!(parse_weight(br#"{"weight": -1}"#).is_err());
        assert!(parse_weight(b"[]").is_err());
    }

    #[test]
    fn segments_are_unescaped() {
        assert_eq!(decode("%5B%3A%3A1%5D%3A80"), "[::1]:80");
        assert_eq!(decode("127.0.0.1:80"), "127.0.0.1:80");
        assert_eq!(decode("bad%zz"), "bad%zz");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
