//! Reading corelb's admin API the way an operator's script would: the
//! `/status` document and `/metrics` samples. Start the proxy with
//! `--admin 127.0.0.1:0` and pass [`super::Proxy::admin_addr`].

use std::net::SocketAddr;

use serde_json::Value;

use super::{Backend, Client, Proxy, Response};

/// corelb in front of `backend`, with its admin API on loopback, and
/// `extra` flags.
pub fn proxy_with_admin(backend: &Backend, extra: &[&str]) -> Proxy {
    let addr = backend.addr().to_string();
    let mut args = vec!["--backend", &addr, "--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Proxy::start(&args)
}

/// What the admin API can change, as `/status` shows it: the config
/// generation and every backend's `(addr, state)`, sorted.
pub fn backend_states(admin: SocketAddr) -> (u64, Vec<(String, String)>) {
    let doc = status(admin);
    let mut backends: Vec<(String, String)> = doc["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["backends"].as_array().into_iter().flatten())
        .map(|b| {
            (
                b["addr"].as_str().unwrap_or_default().to_string(),
                b["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    backends.sort();
    (doc["generation"].as_u64().unwrap_or(0), backends)
}

/// `GET path` from the admin API, naming it in `Host` as curl or a
/// browser would (other names are refused).
pub fn get(admin: SocketAddr, path: &str) -> Response {
    let mut c = Client::connect(admin);
    c.send(format!(
        "GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    ));
    c.read_response()
}

/// `GET /status` from the admin API, parsed.
pub fn status(admin: SocketAddr) -> Value {
    let r = get(admin, "/status");
    assert_eq!(r.status, 200, "/status: {}", r.body_str());
    serde_json::from_slice(&r.body).expect("/status is JSON")
}

/// The default pool's backend addresses, as `/status` lists them.
pub fn pool_addrs(admin: SocketAddr) -> Vec<String> {
    status(admin)["pools"][0]["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| b["addr"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The `/status` entry of backend `addr` in the default pool.
pub fn backend_status(admin: SocketAddr, addr: SocketAddr) -> Value {
    let doc = status(admin);
    doc["pools"][0]["backends"]
        .as_array()
        .and_then(|list| list.iter().find(|b| b["addr"] == addr.to_string()))
        .cloned()
        .unwrap_or_else(|| panic!("{addr} not in /status: {doc}"))
}

/// `state` of backend `addr` in `/status`: up, down, open, half-open.
pub fn state(admin: SocketAddr, addr: SocketAddr) -> String {
    backend_status(admin, addr)["state"]
        .as_str()
        .expect("state is a string")
        .to_string()
}

/// `effective_weight` of backend `addr` in `/status` (in units of its
/// configured weight).
pub fn effective_weight(admin: SocketAddr, addr: SocketAddr) -> f64 {
    backend_status(admin, addr)["effective_weight"]
        .as_f64()
        .expect("effective_weight is a number")
}

/// The value of the sample `name{labels}` (exactly as written) in
/// `/metrics`.
pub fn metric(admin: SocketAddr, sample: &str) -> f64 {
    let text = get(admin, "/metrics").body_str();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{sample} not in /metrics:\n{text}"))
}
