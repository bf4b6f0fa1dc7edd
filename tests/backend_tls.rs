//! TLS to backends, black-box over loopback: corelb's plain listener in
//! front of real nginx backends listening with `ssl`, their certificates
//! signed by a test CA (`common/tls.rs`); pools with `tls = true`.
//!
//! nginx says what it saw in response headers: `$connection` (its
//! connection serial number: pooling), `$ssl_session_reused` (`r` for a
//! resumed session), `$ssl_server_name` (the SNI corelb sent).

mod common;
#[path = "common/websocket.rs"]
mod websocket;

use std::path::Path;

use common::admin::{metric, state};
use common::tls::{KeyKind, TestCa};
use common::*;

/// The name the backends' certificates are for.
const NAME: &str = "backend.test";

/// A CA in a directory of its own.
struct Ca {
    _dir: TempDir,
    ca: TestCa,
}

impl Ca {
    fn new() -> Ca {
        let dir = TempDir::new("backend-ca");
        let ca = TestCa::new(dir.path());
        Ca { _dir: dir, ca }
    }

    fn pem(&self) -> String {
        self.ca.cert().display().to_string()
    }
}

/// An nginx listening with `ssl`, its certificate for [`NAME`] signed by
/// `ca`. `/info` answers with what nginx saw; `/echo` (and anything
/// else) goes on to `upstream` (plain HTTP) if given.
fn tls_nginx(ca: &Ca, upstream: Option<&str>) -> Nginx {
    let (cert, key) = ca.ca.issue(
        &format!("nginx-{}", common::free_port()),
        &[NAME],
        KeyKind::EcdsaP256,
        30,
    );
    let proxy = match upstream {
        Some(addr) => format!(
            "location / {{ proxy_pass http://{addr}; proxy_http_version 1.1; \
             proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $http_connection; \
             add_header X-Conn $connection always; add_header X-Reused $ssl_session_reused always; }}"
        ),
        None => String::new(),
    };
    let block = format!(
        "    ssl_certificate {};\n    ssl_certificate_key {};\n\
         ssl_session_cache shared:backend:1m;\n    ssl_session_tickets on;\n\
         client_max_body_size 8m;\n    keepalive_timeout 60s;\n\
         location = /info {{ add_header X-Conn $connection; add_header X-Reused $ssl_session_reused; \
         add_header X-Sni $ssl_server_name; return 200 \"ok\\n\"; }}\n\
         location = /health {{ return 200 \"up\\n\"; }}\n    {proxy}\n",
        cert.display(),
        key.display()
    );
    Nginx::start_listening(" ssl", &block, |_: &Path| {})
}

/// A config file with one pool over `backends`, with `pool_keys` added
/// (`tls = true`, ...).
fn config(backends: &[&Nginx], pool_keys: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|n| format!("{{ addr = \"{}\" }}", n.addr))
        .collect();
    format!(
        "[[pools]]\nname = \"default\"\nbackends = [{}]\n{pool_keys}\n",
        list.join(", ")
    )
}

/// The verified pool over `backends`: TLS, the test CA, SNI [`NAME`].
fn verified(ca: &Ca, backends: &[&Nginx]) -> String {
    config(
        backends,
        &format!("tls = true\ntls_ca = {:?}\ntls_sni = \"{NAME}\"", ca.pem()),
    )
}

fn header(res: &Response, name: &str) -> String {
    res.header(name).unwrap_or_default().to_string()
}

both_drivers!(requests_go_over_verified_tls_and_stay_pooled, |driver| {
    let ca = Ca::new();
    let echo = Backend::echo();
    let nginx = tls_nginx(&ca, Some(&echo.addr().to_string()));
    let (proxy, _dir) = Proxy::with_config(driver, &verified(&ca, &[&nginx]), &[]);
    let mut client = proxy.client();

    let res = client.get("/info");
    assert_eq!(res.status, 200, "{res:?}\n{}", proxy.log());
    assert_eq!(header(&res, "x-sni"), NAME, "the SNI sent");
    let first_conn = header(&res, "x-conn");
    // Keep-alive to the backend: the same TLS connection every time.
    for _ in 0..20 {
        let res = client.get("/info");
        assert_eq!(res.status, 200);
        assert_eq!(header(&res, "x-conn"), first_conn, "one pooled connection");
    }

    // 1 MiB up and 1 MiB back down, through the TLS connection.
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    client.send(format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    client.send(&body);
    let res = client.read_response();
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body == body, "the body came back whole");
    assert_eq!(echo.request_count(), 1);
    let res = client.get("/echo/after");
    assert_eq!(res.status, 200);
    assert_eq!(header(&res, "x-method"), "GET");
});

both_drivers!(new_connections_resume_the_tls_session, |driver| {
    let ca = Ca::new();
    let echo = Backend::echo();
    let nginx = tls_nginx(&ca, Some(&echo.addr().to_string()));
    // No idle connections kept: every request makes a new one.
    let (proxy, _dir) = Proxy::with_config(
        driver,
        &verified(&ca, &[&nginx]),
        &["--upstream-keepalive", "0"],
    );
    // Each the first request of its connection, its body sent in two
    // parts with a pause, so that it is still streaming up when the
    // backend's session tickets arrive: those are no early answer.
    let body: Vec<u8> = (0..256 * 1024).map(|i| (i % 253) as u8).collect();
    let mut conns = Vec::new();
    let mut reused = Vec::new();
    for _ in 0..5 {
        let mut client = proxy.client();
        client.send(format!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        client.send(&body[..1000]);
        std::thread::sleep(std::time::Duration::from_millis(100));
        client.send(&body[1000..]);
        let res = client.read_response();
        assert_eq!(res.status, 200, "{res:?}\n{}", proxy.log());
        assert!(res.body == body, "the body came back whole");
        conns.push(header(&res, "x-conn"));
        reused.push(header(&res, "x-reused"));
    }
    conns.dedup();
    assert_eq!(conns.len(), 5, "a new backend connection each time");
    assert_eq!(reused[0], ".", "the first is a full handshake");
    assert!(
        reused[1..].iter().all(|r| r == "r"),
        "the later ones resume: {reused:?}"
    );
});

both_drivers!(an_untrusted_certificate_is_a_connect_failure, |driver| {
    let ca = Ca::new();
    let other = Ca::new();
    let untrusted = tls_nginx(&other, None);
    let (proxy, _dir) = Proxy::with_config(
        driver,
        &verified(&ca, &[&untrusted]),
        &["--admin", "127.0.0.1:0"],
    );
    let res = proxy.client().get("/info");
    assert_eq!(res.status, 502, "{res:?}");
    let failures = metric(
        proxy.admin_addr(),
        "corelb_upstream_tls_failures_total{reason=\"certificate\"}",
    );
    assert!(failures >= 1.0, "counted: {failures}");
});

both_drivers!(a_failed_handshake_is_retried_on_another_backend, |driver| {
    let ca = Ca::new();
    let other = Ca::new();
    let good = tls_nginx(&ca, None);
    let untrusted = tls_nginx(&other, None);
    let (proxy, _dir) = Proxy::with_config(
        driver,
        &verified(&ca, &[&untrusted, &good]),
        &["--admin", "127.0.0.1:0"],
    );
    for _ in 0..6 {
        let res = proxy.client().get("/info");
        assert_eq!(res.status, 200, "{res:?}\n{}", proxy.log());
    }
    let failures = metric(
        proxy.admin_addr(),
        "corelb_upstream_tls_failures_total{reason=\"certificate\"}",
    );
    assert!(failures >= 1.0, "the untrusted one was tried: {failures}");
});

#[test]
fn insecure_skip_verify_accepts_any_certificate_and_says_so() {
    let ca = Ca::new();
    let other = Ca::new();
    let untrusted = tls_nginx(&other, None);
    let (proxy, _dir) = Proxy::with_config(
        common::Driver::Uring,
        &config(&[&untrusted], "tls = true\ntls_insecure_skip_verify = true"),
        &[],
    );
    let res = proxy.client().get("/info");
    assert_eq!(res.status, 200, "{res:?}");
    // An IP address as the backend: no SNI sent.
    assert_eq!(header(&res, "x-sni"), "");
    let warnings = || proxy.log().matches("tls_insecure_skip_verify").count();
    assert_eq!(warnings(), 1, "a warning at start:\n{}", proxy.log());
    proxy.signal("HUP");
    wait_until("the warning again on reload", || warnings() >= 2);
    drop(ca);
}

#[test]
fn the_default_pool_takes_tls_from_flags() {
    let ca = Ca::new();
    let nginx = tls_nginx(&ca, None);
    let addr = nginx.addr.to_string();
    let pem = ca.pem();
    let proxy = Proxy::start(&[
        "--backend",
        &addr,
        "--backend-tls-ca",
        &pem,
        "--backend-tls-sni",
        NAME,
    ]);
    let res = proxy.client().get("/info");
    assert_eq!(res.status, 200, "{res:?}\n{}", proxy.log());
    assert_eq!(header(&res, "x-sni"), NAME);
}

#[test]
fn a_bad_ca_file_is_an_error_naming_the_key_and_file() {
    let dir = TempDir::new("bad-ca");
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let conf = dir.path().join("corelb.toml");
    std::fs::write(
        &conf,
        format!(
            "[[pools]]\nname = \"default\"\nbackends = [{{ addr = \"127.0.0.1:9\" }}]\n\
             tls = true\ntls_ca = {:?}\n",
            bad.display().to_string()
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let (code, err) = Proxy::start_failing(&["--config", &conf, "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("pools[0].tls_ca"), "names the key: {err}");
    assert!(err.contains("corelb.toml:5"), "names the line: {err}");
    assert!(err.contains("ca.pem"), "names the file: {err}");

    // The other keys need `tls = true`.
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, conf_text.replace("tls = true\n", "")).unwrap();
    let (code, err) = Proxy::start_failing(&["--config", &conf, "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("pools[0].tls_ca") && err.contains("tls = true"),
        "{err}"
    );

    let bad = bad.display().to_string();
    let (code, err) = Proxy::start_failing(&[
        "--backend",
        "127.0.0.1:9",
        "--backend-tls-ca",
        &bad,
        "--check",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--backend-tls-ca"), "names the flag: {err}");
}

#[test]
fn health_checks_speak_tls() {
    let ca = Ca::new();
    let other = Ca::new();
    let good = tls_nginx(&ca, None);
    let untrusted = tls_nginx(&other, None);
    let keys = format!(
        "tls = true\ntls_ca = {:?}\ntls_sni = \"{NAME}\"\nhealth_path = \"/health\"",
        ca.pem()
    );
    let (proxy, _dir) = Proxy::with_config(
        common::Driver::Uring,
        &config(&[&good, &untrusted], &keys),
        &[
            "--admin",
            "127.0.0.1:0",
            "--health-interval",
            "200ms",
            "--health-fall",
            "2",
        ],
    );
    let admin = proxy.admin_addr();
    wait_until("the untrusted backend is marked down", || {
        state(admin, untrusted.addr) == "down"
    });
    assert_eq!(state(admin, good.addr), "up", "{}", proxy.log());
    assert!(
        metric(
            admin,
            &format!(
                "corelb_health_checks_total{{backend=\"{}\",result=\"ok\"}}",
                good.addr
            )
        ) >= 1.0
    );
}

both_drivers!(websockets_tunnel_to_a_tls_backend, |driver| {
    let ca = Ca::new();
    let echo = websocket::EchoServer::start();
    let nginx = tls_nginx(&ca, Some(&echo.addr()));
    let (proxy, _dir) = Proxy::with_config(driver, &verified(&ca, &[&nginx]), &[]);
    let mut client: Client = proxy.client();
    websocket::handshake(&mut client, "/ws");
    for i in 0..20 {
        let text = format!("message {i}");
        websocket::send_frame(&mut client, 0x1, text.as_bytes());
        let (opcode, payload) = websocket::read_frame(&mut client);
        assert_eq!((opcode, payload), (0x1, text.into_bytes()));
    }
});

#[test]
fn a_reload_with_a_broken_ca_file_changes_nothing() {
    let ca = Ca::new();
    let nginx = tls_nginx(&ca, None);
    // The pool's CA is a copy the test can break.
    let copy = ca._dir.path().join("copy-of-ca.pem");
    std::fs::copy(ca.ca.cert(), &copy).unwrap();
    let keys = format!(
        "tls = true\ntls_ca = {:?}\ntls_sni = \"{NAME}\"",
        copy.display().to_string()
    );
    let (proxy, _dir) = Proxy::with_config(Driver::Uring, &config(&[&nginx], &keys), &[]);
    assert_eq!(proxy.client().get("/info").status, 200);
    std::fs::write(&copy, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    proxy.signal("HUP");
    wait_until("the reload refused", || {
        proxy.log().contains("reload failed")
    });
    assert!(
        proxy.log().contains("copy-of-ca.pem"),
        "names the file: {}",
        proxy.log()
    );
    let res = proxy.client().get("/info");
    assert_eq!(res.status, 200, "the pool kept its CA: {res:?}");
}
