//! TLS from clients, black-box over loopback: real clients (curl, Python's
//! `ssl`, `openssl s_client`, a rustls client) through a corelb TLS
//! listener to a plain HTTP backend.

mod common;
#[path = "common/websocket.rs"]
mod websocket;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use common::admin::metric;
use common::tls::{connect, get, read_response, s_client_subject, KeyKind, TestCa};
use common::{require_tool, wait_until, Backend, Client, Proxy, Response, TempDir, SAFETY};

/// A CA and one certificate for `localhost`, in a temp dir.
struct Certs {
    _dir: TempDir,
    ca: TestCa,
    cert: String,
    key: String,
}

fn localhost_certs() -> Certs {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let (cert, key) = ca.issue("localhost", &["localhost"], KeyKind::EcdsaP256, 30);
    Certs {
        ca,
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        _dir: dir,
    }
}

/// corelb with one TLS listener (and `extra` flags) in front of the
/// backend at `backend` (`HOST:PORT`).
fn tls_proxy(driver: common::Driver, certs: &Certs, backend: &str, extra: &[&str]) -> Proxy {
    let mut args = vec![
        "--io-driver",
        driver.as_str(),
        "--listen",
        "127.0.0.1:0,tls",
        "--tls-cert",
        &certs.cert,
        "--tls-key",
        &certs.key,
    ];
    args.extend(["--backend", backend]);
    args.extend_from_slice(extra);
    Proxy::start(&args)
}

fn curl(args: &[&str]) -> (String, String) {
    require_tool("curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("cannot run curl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

both_drivers!(https_requests_reach_the_backend_marked_as_https, |driver| {
    let certs = localhost_certs();
    let backend = Backend::echo();
    let proxy = tls_proxy(driver, &certs, &backend.addr().to_string(), &[]);
    let port = proxy.addr().port();
    let url = format!("https://localhost:{port}/hello");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = certs.ca.cert().display().to_string();

    // curl, verifying the chain against the test CA.
    let (out, err) = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-w",
        "%{http_code} %{ssl_verify_result}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(out, "200 0", "curl: {err}");
    let seen = backend
        .requests()
        .pop()
        .expect("the backend saw the request");
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("https"));
    assert_eq!(
        seen.header("X-Forwarded-Port"),
        Some(port.to_string().as_str())
    );

    // 10 MiB up (chunked) and back, on one connection.
    let dir = TempDir::new("tls-body");
    let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let up = dir.path().join("up.bin");
    let down = dir.path().join("down.bin");
    std::fs::write(&up, &big).unwrap();
    let upload = format!("@{}", up.display());
    let (out, err) = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &upload,
        "-o",
        &down.display().to_string(),
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!(out, "200", "curl: {err}");
    assert!(
        std::fs::read(&down).unwrap() == big,
        "the 10 MiB body came back changed"
    );

    // Python's http.client and ssl: three requests on one kept-alive
    // connection.
    let script = format!(
        "import ssl, http.client\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         c = http.client.HTTPSConnection('localhost', {port}, context=ctx, timeout=10)\n\
         for i in range(3):\n\
         \x20   c.request('POST', '/p', body=b'x' * 100000)\n\
         \x20   r = c.getresponse(); b = r.read(); assert r.status == 200 and len(b) == 100000, (r.status, len(b))\n\
         print('ok', c.sock.version())\n"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("ok TLSv1.3"),
        "python: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Three pipelined requests in one TLS write.
    let config = certs.ca.client_config(&[b"http/1.1"]);
    let mut conn = connect(proxy.addr(), "localhost", &config).unwrap();
    conn.write_all(b"GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /3 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    for path in ["/1", "/2", "/3"] {
        let (status, head, _) = read_response(&mut conn).unwrap();
        assert_eq!(status, 200);
        assert!(head.contains(&format!("X-Path: {path}")), "{head}");
    }
    assert_eq!(conn.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
});

#[test]
fn sni_chooses_exact_names_then_wildcards_then_the_default() {
    let dir = TempDir::new("tls-sni");
    let ca = TestCa::new(dir.path());
    let (d_cert, d_key) = ca.issue("default", &["default.test"], KeyKind::EcdsaP256, 30);
    let (a_cert, a_key) = ca.issue("a", &["a.test"], KeyKind::EcdsaP256, 30);
    let (b_cert, b_key) = ca.issue("b", &["b.test"], KeyKind::Rsa2048, 30);
    let (w_cert, w_key) = ca.issue("wild", &["*.w.test"], KeyKind::EcdsaP256, 30);
    let (x_cert, x_key) = ca.issue("exact-in-wild", &["x.w.test"], KeyKind::EcdsaP256, 30);
    let backend = Backend::echo();
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0,tls", "--backend"]
        .map(String::from)
        .to_vec();
    args.push(backend.addr().to_string());
    for (c, k) in [
        (&d_cert, &d_key),
        (&a_cert, &a_key),
        (&b_cert, &b_key),
        (&w_cert, &w_key),
        (&x_cert, &x_key),
    ] {
        args.extend([
            "--tls-cert".into(),
            c.display().to_string(),
            "--tls-key".into(),
            k.display().to_string(),
        ]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = Proxy::start(&refs);
    let addr = proxy.addr();
    let subject = |sni| s_client_subject(addr, sni, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        subject(Some("a.test")).contains("CN=a.test")
            || subject(Some("a.test")).contains("CN = a.test")
    );
    assert!(
        subject(Some("b.test")).contains("b.test"),
        "RSA certificate for b.test"
    );
    assert!(
        subject(Some("y.w.test")).contains("*.w.test"),
        "the wildcard"
    );
    assert!(
        subject(Some("x.w.test")).contains("x.w.test") && !subject(Some("x.w.test")).contains('*'),
        "an exact name beats a wildcard"
    );
    assert!(
        subject(Some("A.TEST")).contains("a.test"),
        "names match in any case"
    );
    assert!(
        subject(None).contains("default.test"),
        "no SNI: the first certificate"
    );
    assert!(
        subject(Some("other.test")).contains("default.test"),
        "an unknown name: the first certificate"
    );

    // And the chain verifies for each name with a real client.
    let config = ca.client_config(&[]);
    for name in ["a.test", "b.test", "y.w.test", "x.w.test"] {
        let (status, _, _) =
            get(addr, name, "/", &config).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status, 200, "{name}");
    }
}

#[test]
fn sessions_resume_on_any_worker() {
    require_tool("python3");
    let certs = localhost_certs();
    let backend = Backend::echo();
    let proxy = tls_proxy(
        common::Driver::Uring,
        &certs,
        &backend.addr().to_string(),
        &[
            "--threads",
            "2",
            "--no-accept-steering",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let ca = certs.ca.cert().display().to_string();
    let port = proxy.addr().port();
    // Forty new connections, each resuming the session of the one before:
    // with two workers and the kernel's even split, many land on the
    // worker that did not issue the ticket.
    let script = format!(
        "import ssl, socket\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         sess = None; resumed = 0\n\
         for i in range(41):\n\
         \x20   s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port}), timeout=10), server_hostname='localhost', session=sess)\n\
         \x20   s.sendall(b'GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n')\n\
         \x20   while s.recv(65536): pass\n\
         \x20   resumed += i > 0 and s.session_reused\n\
         \x20   sess = s.session; s.close()\n\
         print(resumed)\n"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        "40",
        "resumed of 40; python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = proxy.admin_addr();
    let per_worker: Vec<f64> = (0..2)
        .map(|w| {
            metric(
                admin,
                &format!("corelb_connections_accepted_total{{worker=\"{w}\"}}"),
            )
        })
        .collect();
    assert!(
        per_worker.iter().all(|&n| n > 0.0),
        "both workers took connections: {per_worker:?}"
    );
}

#[test]
fn tls_versions_below_1_2_and_foreign_alpn_are_refused() {
    let certs = localhost_certs();
    let backend = Backend::echo();
    let proxy = tls_proxy(
        common::Driver::Uring,
        &certs,
        &backend.addr().to_string(),
        &[],
    );
    let addr = proxy.addr();
    assert!(s_client_subject(addr, Some("localhost"), &["-tls1_2"]).is_ok());
    assert!(s_client_subject(addr, Some("localhost"), &["-tls1_3"]).is_ok());
    for old in ["-tls1_1", "-tls1"] {
        assert!(
            s_client_subject(addr, Some("localhost"), &[old]).is_err(),
            "{old} must fail"
        );
    }
    // A client that speaks only a protocol corelb does not fails the
    // handshake cleanly; one that speaks only h2 gets it (tests/h2.rs).
    let foreign = certs.ca.client_config(&[b"spdy/3.1"]);
    assert!(connect(addr, "localhost", &foreign).is_err());
    let h2_only = certs.ca.client_config(&[b"h2"]);
    assert!(connect(addr, "localhost", &h2_only).is_ok());
    // No ALPN at all is fine.
    let plain = certs.ca.client_config(&[]);
    assert_eq!(get(addr, "localhost", "/", &plain).unwrap().0, 200);
}

#[test]
fn hostile_clients_get_a_clean_close_and_cost_no_worker() {
    let certs = localhost_certs();
    let backend = Backend::echo();
    let proxy = tls_proxy(
        common::Driver::Uring,
        &certs,
        &backend.addr().to_string(),
        &["--tls-handshake-timeout", "1s", "--admin", "127.0.0.1:0"],
    );
    let addr = proxy.addr();
    let closed_soon = |bytes: &[u8]| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(SAFETY)).unwrap();
        s.write_all(bytes).unwrap();
        let started = Instant::now();
        let mut sink = [0u8; 4096];
        loop {
            match s.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(started.elapsed() < SAFETY, "closed, not hanging: {bytes:?}");
    };
    closed_soon(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    closed_soon(&[0x42; 300]);
    // A truncated ClientHello: a record header promising more than comes.
    closed_soon(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ]);

    // 1 000 clients that connect and never finish a handshake, while a
    // normal client is served.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(&[0x16, 0x03, 0x01]);
            s
        })
        .collect();
    let config = certs.ca.client_config(&[]);
    for _ in 0..20 {
        assert_eq!(get(addr, "localhost", "/", &config).unwrap().0, 200);
    }
    // The handshake timeout closes them all.
    let admin = proxy.admin_addr();
    wait_until("every half handshake timed out", || {
        metric(admin, "corelb_tls_handshakes_total{result=\"timeout\"}") >= 1000.0
    });
    drop(idle);
    assert!(metric(admin, "corelb_tls_handshakes_total{result=\"ok\"}") >= 20.0);

    // A TLS handshake on a plaintext listener fails at once (corelb
    // answers the ClientHello with a 400 and closes).
    let plain = Proxy::start(&["--backend", &backend.addr().to_string()]);
    assert!(connect(plain.addr(), "localhost", &config).is_err());
}

#[test]
fn a_plaintext_listener_can_redirect_to_https() {
    let certs = localhost_certs();
    let backend = Backend::echo();
    let proxy = Proxy::start(&[
        "--listen",
        "127.0.0.1:0,redirect-https",
        "--listen",
        "127.0.0.1:0,tls",
        "--tls-cert",
        &certs.cert,
        "--tls-key",
        &certs.key,
        "--backend",
        &backend.addr().to_string(),
    ]);
    let addrs = proxy.addrs();
    assert_eq!(addrs.len(), 2, "{}", proxy.log());
    let https_port = addrs[1].port();
    let mut client = common::Client::connect(addrs[0]);
    client.send(b"GET /a/b?c=d HTTP/1.1\r\nHost: example.test\r\n\r\n");
    let res = client.read_response();
    assert_eq!(res.status, 301);
    assert_eq!(
        res.header("Location"),
        Some(format!("https://example.test:{https_port}/a/b?c=d").as_str())
    );
    // The connection stays open for the next request; a POST keeps its
    // method with 308.
    client.send(b"POST /form HTTP/1.1\r\nHost: example.test:8080\r\nContent-Length: 0\r\n\r\n");
    let res = client.read_response();
    assert_eq!(res.status, 308);
    assert_eq!(
        res.header("Location"),
        Some(format!("https://example.test:{https_port}/form").as_str())
    );
    assert_eq!(backend.request_count(), 0, "nothing reached the backend");
}

#[test]
fn bad_certificates_are_refused_naming_the_file_and_the_flag() {
    let certs = localhost_certs();
    let dir = TempDir::new("tls-bad");
    let other = TestCa::new(dir.path());
    let (_, foreign_key) = other.issue("foreign", &["localhost"], KeyKind::EcdsaP256, 30);
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let base = ["--backend", "127.0.0.1:9", "--listen", "127.0.0.1:0,tls"];

    let (code, err) = Proxy::start_failing(&base);
    assert_ne!(code, 0);
    assert!(
        err.contains("--listen") && err.contains("needs a certificate"),
        "{err}"
    );

    let fk = foreign_key.display().to_string();
    let (code, err) =
        Proxy::start_failing(&[&base[..], &["--tls-cert", &certs.cert, "--tls-key", &fk]].concat());
    assert_ne!(code, 0);
    assert!(
        err.contains(&fk) && err.contains("does not belong"),
        "{err}"
    );

    let np = not_pem.display().to_string();
    let (code, err) =
        Proxy::start_failing(&[&base[..], &["--tls-cert", &np, "--tls-key", &certs.key]].concat());
    assert_ne!(code, 0);
    assert!(err.contains(&np) && err.contains("--tls-cert"), "{err}");

    // --check reads them too.
    let (code, err) = Proxy::start_failing(
        &[
            &base[..],
            &["--tls-cert", &certs.cert, "--tls-key", &fk, "--check"],
        ]
        .concat(),
    );
    assert_ne!(code, 0, "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_corelb"))
        .args(
            [
                &base[..],
                &[
                    "--tls-cert",
                    &certs.cert,
                    "--tls-key",
                    &certs.key,
                    "--check",
                ],
            ]
            .concat(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A certificate about to expire loads, with a warning.
    let (soon_cert, soon_key) = certs
        .ca
        .issue("soon", &["localhost"], KeyKind::EcdsaP256, 3);
    let backend = Backend::echo();
    let proxy = Proxy::start(&[
        "--listen",
        "127.0.0.1:0,tls",
        "--tls-cert",
        &soon_cert.display().to_string(),
        "--tls-key",
        &soon_key.display().to_string(),
        "--backend",
        &backend.addr().to_string(),
    ]);
    assert!(proxy.log().contains("expires in"), "{}", proxy.log());
}

#[test]
fn a_reload_swaps_the_certificate_under_load_and_a_bad_one_changes_nothing() {
    let dir = TempDir::new("tls-reload");
    let ca = TestCa::new(dir.path());
    let (one_cert, one_key) = ca.issue("one", &["localhost", "one.test"], KeyKind::EcdsaP256, 30);
    let (two_cert, two_key) = ca.issue("two", &["localhost", "two.test"], KeyKind::EcdsaP256, 30);
    let (_, other_key) = ca.issue("other", &["localhost"], KeyKind::EcdsaP256, 30);
    let live_cert = dir.path().join("live.pem");
    let live_key = dir.path().join("live.key");
    std::fs::copy(&one_cert, &live_cert).unwrap();
    std::fs::copy(&one_key, &live_key).unwrap();
    let backend = Backend::echo();
    let config = dir.path().join("corelb.toml");
    std::fs::write(
        &config,
        format!(
            "threads = 2\n\n[[pools]]\nname = \"default\"\nbackends = [{{ addr = \"{}\" }}]\n",
            backend.addr()
        ),
    )
    .unwrap();
    let proxy = Proxy::start(&[
        "--config",
        &config.display().to_string(),
        "--listen",
        "127.0.0.1:0,tls",
        "--tls-cert",
        &live_cert.display().to_string(),
        "--tls-key",
        &live_key.display().to_string(),
    ]);
    let addr = proxy.addr();
    let client_config = ca.client_config(&[]);
    // A fresh client each time: a resumed session would show the
    // certificate of the session it resumed.
    let served_cn = |_: &Arc<rustls::ClientConfig>| -> String {
        let conn = connect(addr, "localhost", &ca.client_config(&[])).unwrap();
        let leaf = conn.conn.peer_certificates().unwrap()[0].clone();
        let text = String::from_utf8_lossy(leaf.as_ref()).into_owned();
        if text.contains("one.test") {
            "one".into()
        } else if text.contains("two.test") {
            "two".into()
        } else {
            "?".into()
        }
    };
    assert_eq!(served_cn(&client_config), "one");

    // Keep-alive and new-connection clients for the whole swap.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, failures, done, config) = (
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&done),
                Arc::clone(&client_config),
            );
            thread::spawn(move || {
                let mut conn = None;
                while !stop.load(Ordering::Relaxed) {
                    if conn.is_none() || i % 2 == 0 {
                        conn = connect(addr, "localhost", &config).ok();
                    }
                    let ok = conn.as_mut().is_some_and(|c| {
                        c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                            .is_ok()
                            && matches!(read_response(c), Ok((200, _, _)))
                    });
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            })
        })
        .collect();
    wait_until("load running", || done.load(Ordering::Relaxed) > 200);
    std::fs::copy(&two_cert, &live_cert).unwrap();
    std::fs::copy(&two_key, &live_key).unwrap();
    proxy.signal("HUP");
    wait_until("the reload", || proxy.log().contains("reloaded"));
    let after = done.load(Ordering::Relaxed);
    wait_until("more load after the reload", || {
        done.load(Ordering::Relaxed) > after + 200
    });
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed requests across the reload"
    );
    assert_eq!(
        served_cn(&client_config),
        "two",
        "new handshakes get the new certificate"
    );

    // A key that does not match: the reload is refused, nothing changes.
    std::fs::copy(&other_key, &live_key).unwrap();
    proxy.signal("HUP");
    wait_until("the refused reload", || {
        proxy.log().contains("does not belong")
    });
    assert!(
        proxy.log().contains(&live_key.display().to_string()),
        "{}",
        proxy.log()
    );
    assert_eq!(served_cn(&client_config), "two");
}

both_drivers!(
    websocket_over_wss_is_tunnelled_like_plain_websocket,
    |driver| {
        let certs = localhost_certs();
        let echo = websocket::EchoServer::start();
        let proxy = tls_proxy(driver, &certs, &echo.addr(), &[]);
        let ca = certs.ca.cert().display().to_string();
        let port = proxy.addr().port();
        // A real WebSocket client (Python's `websockets`) over TLS: many small
        // messages and one large one, each echoed back through the tunnel.
        let script = format!(
        "import asyncio, ssl, websockets\n\
         async def main():\n\
         \x20   ctx = ssl.create_default_context(cafile={ca:?})\n\
         \x20   async with websockets.connect('wss://localhost:{port}/ws', ssl=ctx, open_timeout=10) as ws:\n\
         \x20       for i in range(200):\n\
         \x20           await ws.send('m%d' % i)\n\
         \x20           assert await asyncio.wait_for(ws.recv(), 10) == 'm%d' % i\n\
         \x20       big = 'x' * 300000\n\
         \x20       await ws.send(big)\n\
         \x20       assert await asyncio.wait_for(ws.recv(), 10) == big\n\
         \x20   print('ok')\n\
         asyncio.run(main())\n"
    );
        websocket::require_websockets();
        let out = Command::new("timeout")
            .args([&SAFETY.as_secs().to_string(), "python3", "-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok",
            "python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
);
