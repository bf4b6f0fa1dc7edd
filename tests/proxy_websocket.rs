//! WebSocket and Upgrade tunnels, end to end: a real WebSocket server and
//! real WebSocket clients (Python's `websockets`, `tests/websocket/`)
//! through corelb, and raw clients for the cases no well-behaved client
//! produces (a refused upgrade followed by more bytes, wrong `101`s).

mod common;
#[path = "common/websocket.rs"]
mod websocket;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use common::*;
use websocket::*;

/// The Python clients print timings and counts; their own waits are the
/// bounds, this one only stops a hung interpreter.
const CLIENT_BOUND: Duration = Duration::from_secs(180);

fn ws_url(proxy: &Proxy, path: &str) -> String {
    format!("ws://{}{path}", proxy.addr())
}

both_drivers!(
    ten_thousand_messages_up_to_a_mebibyte_echo_byte_exact,
    |driver| {
        let server = EchoServer::start();
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--backend",
            &server.addr(),
            "--admin",
            "off",
        ]);
        let out = run_client(
            &ws_url(&proxy, "/echo"),
            &["echo", "10000", "7"],
            CLIENT_BOUND,
        );
        assert!(out.contains("\"messages\": 10000"), "{out}");
        assert!(out.contains("\"largest\": 1048576"), "{out}");
        println!("{driver:?}: {}", out.trim());
    }
);

both_drivers!(
    the_close_handshake_goes_through_from_either_side,
    |driver| {
        let server = EchoServer::start();
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--backend",
            &server.addr(),
            "--admin",
            "off",
        ]);
        let out = run_client(&ws_url(&proxy, "/"), &["close"], CLIENT_BOUND);
        assert!(out.contains("\"server_close\": 4001"), "{out}");
    }
);

both_drivers!(two_hundred_tunnels_at_once, |driver| {
    let server = EchoServer::start();
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &server.addr(),
        "--admin",
        "off",
    ]);
    let out = run_client(&ws_url(&proxy, "/"), &["many", "200", "20"], CLIENT_BOUND);
    assert!(out.contains("\"tunnels\": 200"), "{out}");
});

both_drivers!(
    an_idle_tunnel_is_closed_after_the_tunnel_idle_timeout,
    |driver| {
        let server = EchoServer::start();
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--backend",
            &server.addr(),
            "--admin",
            "off",
            "--tunnel-idle-timeout",
            "1s",
            // the client's own idle limit must not be what closes it
            "--client-idle-timeout",
            "60s",
        ]);
        let out = run_client(&ws_url(&proxy, "/"), &["idle", "1"], CLIENT_BOUND);
        assert!(out.contains("closed_after_s"), "{out}");
    }
);

/// `tunnel_idle_timeout` is reloadable: tunnels opened after a SIGHUP get
/// the new one.
#[test]
fn the_tunnel_idle_timeout_follows_a_reload() {
    let server = EchoServer::start();
    let dir = TempDir::new("ws-reload");
    let path = dir.path().join("corelb.toml");
    let config = |timeout: &str| {
        format!(
            "tunnel_idle_timeout = \"{timeout}\"\n[[pools]]\nname = \"default\"\n\
             backends = [{{ addr = \"{}\" }}]\n",
            server.addr()
        )
    };
    std::fs::write(&path, config("1h")).unwrap();
    let proxy = Proxy::start(&["--config", path.to_str().unwrap(), "--admin", "off"]);
    std::fs::write(&path, config("1s")).unwrap();
    proxy.signal("HUP");
    wait_until("the reload is logged", || {
        proxy.log().contains("SIGHUP: reloaded")
    });
    let out = run_client(&ws_url(&proxy, "/"), &["idle", "1"], CLIENT_BOUND);
    assert!(out.contains("closed_after_s"), "{out}");
}

/// The tunnel is counted while open, and once closed no longer; it is
/// logged once, as a `101`.
#[test]
fn open_tunnels_are_counted_in_metrics_and_logged() {
    let server = EchoServer::start();
    let dir = TempDir::new("ws-log");
    let log = dir.path().join("access.log");
    let proxy = Proxy::start(&[
        "--backend",
        &server.addr(),
        "--admin",
        "127.0.0.1:0",
        "--access-log",
        log.to_str().unwrap(),
    ]);
    let admin = proxy.admin_addr();
    let tunnels_open = || {
        let text = common::admin::get(admin, "/metrics").body_str();
        text.lines()
            .filter(|l| l.starts_with("corelb_tunnels_open{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
            .sum::<i64>()
    };
    assert_eq!(tunnels_open(), 0);
    let mut client = proxy.client();
    handshake(&mut client, "/");
    send_frame(&mut client, 0x1, b"hello");
    assert_eq!(read_frame(&mut client), (0x1, b"hello".to_vec()));
    assert_eq!(tunnels_open(), 1);
    send_frame(&mut client, 0x8, &[0x03, 0xe8]); // close, 1000
    assert_eq!(read_frame(&mut client).0, 0x8);
    let _ = client.conn.read_to_eof();
    drop(client);
    wait_until("the tunnel to be counted closed", || tunnels_open() == 0);
    wait_until("the tunnel's access log line", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("\"GET / HTTP/1.1\" 101 "))
    });
}

/// A tunnel is a client connection like any other for `--max-connections`.
#[test]
fn tunnels_count_against_max_connections() {
    let server = EchoServer::start();
    let proxy = Proxy::start(&[
        "--backend",
        &server.addr(),
        "--admin",
        "off",
        "--max-connections",
        "2",
    ]);
    let mut a = proxy.client();
    handshake(&mut a, "/");
    let mut b = proxy.client();
    handshake(&mut b, "/");
    let mut c = proxy.client();
    c.send(upgrade_request("/"));
    c.expect_silence(Duration::from_millis(500));
    send_frame(&mut a, 0x8, &[0x03, 0xe8]);
    assert_eq!(read_frame(&mut a).0, 0x8);
    let _ = a.conn.read_to_eof();
    drop(a);
    let res = c.read_response();
    assert_eq!(res.status, 101, "the third tunnel opens once one closed");
    send_frame(&mut b, 0x1, b"still here");
    assert_eq!(read_frame(&mut b), (0x1, b"still here".to_vec()));
}

/// SIGTERM: an open tunnel keeps working while the process drains, and is
/// closed when `--shutdown-timeout` runs out.
#[test]
fn a_drain_lets_tunnels_run_until_the_shutdown_timeout() {
    let server = EchoServer::start();
    let mut proxy = Proxy::start(&[
        "--backend",
        &server.addr(),
        "--admin",
        "off",
        "--shutdown-timeout",
        "2s",
    ]);
    let mut client = proxy.client();
    handshake(&mut client, "/");
    proxy.signal("TERM");
    wait_until("the drain is logged", || {
        proxy.log().contains("graceful stop: draining")
    });
    // Past the drain's 1 s grace for idle keep-alive connections.
    thread::sleep(Duration::from_millis(1500));
    send_frame(&mut client, 0x2, b"during the drain");
    assert_eq!(read_frame(&mut client), (0x2, b"during the drain".to_vec()));
    proxy.stopped = true;
    assert_eq!(proxy.wait_exit(SAFETY), Some(0), "{}", proxy.log());
    assert!(
        proxy.log().contains("--shutdown-timeout reached"),
        "{}",
        proxy.log()
    );
    match client.conn.fill() {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the tunnel is still open after the exit: {other:?}"),
    }
}

/// Routes `/internal` to a pool of its own, so a request smuggled past an
/// upgrade would show up at the wrong backend.
fn proxy_with_internal_pool(
    driver: Driver,
    public: &Backend,
    internal: &Backend,
) -> (Proxy, TempDir) {
    let dir = TempDir::new("ws-routes");
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        format!(
            "[[pools]]\nname = \"default\"\nbackends = [{{ addr = \"{}\" }}]\n\
             [[pools]]\nname = \"internal\"\nbackends = [{{ addr = \"{}\" }}]\n\
             [[routes]]\npath_prefix = \"/internal\"\npool = \"internal\"\n",
            public.addr(),
            internal.addr()
        ),
    )
    .unwrap();
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--config",
        path.to_str().unwrap(),
        "--admin",
        "off",
    ]);
    (proxy, dir)
}

// The smuggling pattern: the backend refuses the upgrade (426, or ignores
// it with a 200) and the client sends on as if a tunnel had opened. What
// follows must be read as HTTP: parsed, routed, rewritten; never raw bytes
// on the public backend's connection.
both_drivers!(
    a_refused_upgrade_stays_http_and_what_follows_is_routed,
    |driver| {
        for refusal in [426u16, 200] {
            let public = Backend::start(move |req| {
                if req.has_header("upgrade") {
                    Reply::Raw(response(
                        refusal,
                        "No",
                        &[("Upgrade", "websocket")],
                        b"refused",
                    ))
                } else {
                    Reply::ok("public")
                }
            });
            let internal = Backend::echo_name("internal");
            let (proxy, _dir) = proxy_with_internal_pool(driver, &public, &internal);
            let mut client = proxy.client();
            client.send(upgrade_request("/chat"));
            let res = client.read_response();
            assert_eq!(res.status, refusal, "{res:?}");
            assert_eq!(res.body_str(), "refused");
            assert!(!res.has_header("upgrade"), "{res:?}");
            // What a client expecting a tunnel would send next: a request for
            // an internal path, in the same connection.
            client.send("GET /internal/admin HTTP/1.1\r\nHost: test\r\n\r\n");
            let res = client.read_response();
            assert_eq!(res.status, 200, "{res:?}");
            assert_eq!(res.body_str(), "internal", "routed by corelb, as HTTP");
            let seen = &internal.requests()[0];
            assert_eq!(seen.path, "/internal/admin");
            assert_eq!(
                seen.header("via"),
                Some("1.1 corelb"),
                "rewritten by corelb"
            );
            // And a normal request after it still works.
            assert_eq!(client.get("/next").body_str(), "public");
            let public_requests = public.requests();
            assert_eq!(public_requests.len(), 2, "{public_requests:?}");
            assert_eq!(public_requests[0].header("upgrade"), Some("websocket"));
            assert_eq!(public_requests[0].header("connection"), Some("upgrade"));
            assert_eq!(
                public_requests[0].header("sec-websocket-key"),
                Some(KEY),
                "the Sec-WebSocket-* fields go along"
            );
            assert!(public_requests.iter().all(|r| r.path != "/internal/admin"));
            // The connection that carried the refused upgrade was not reused.
            assert_ne!(public_requests[0].conn, public_requests[1].conn);
            // The same, with the would-be tunnel bytes sent before the
            // answer came (in the same write as the upgrade).
            let mut eager = proxy.client();
            eager.send(format!(
                "{}GET /internal/eager HTTP/1.1\r\nHost: test\r\n\r\n",
                upgrade_request("/chat")
            ));
            assert_eq!(eager.read_response().status, refusal);
            assert_eq!(eager.read_response().body_str(), "internal");
            assert_eq!(internal.requests()[1].path, "/internal/eager");
        }
    }
);

/// A backend whose `101` is not an answer to the ask: 502, no tunnel.
fn raw_backend(answer: &'static [u8]) -> (String, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(SAFETY)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(answer).unwrap();
        // Echo whatever else comes until corelb closes: if a tunnel was
        // (wrongly) opened, the test would see its bytes come back.
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let _ = s.write_all(&buf[..n]);
        }
        got
    });
    (addr, handle)
}

both_drivers!(a_101_for_another_protocol_opens_nothing, |driver| {
    let (addr, backend) = raw_backend(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
    );
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &addr,
        "--admin",
        "off",
    ]);
    let mut client = proxy.client();
    client.send(upgrade_request("/"));
    let res = client.read_response();
    assert_eq!(res.status, 502, "{res:?}");
    assert!(res.says_close());
    client.expect_closed();
    let got = backend.join().unwrap();
    assert!(
        got.ends_with(b"\r\n\r\n"),
        "nothing after the head reached the backend"
    );
});

both_drivers!(
    upgrades_other_than_websocket_are_stripped_unless_the_pool_allows_them,
    |driver| {
        let h2c = "GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
               Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        // By default: stripped, and the backend's answer is plain HTTP.
        let backend = Backend::echo();
        let proxy = Proxy::with_backends(driver, &[&backend], &["--admin", "off"]);
        let mut client = proxy.client();
        client.send(h2c);
        assert_eq!(client.read_response().status, 200);
        let seen = &backend.requests()[0];
        for name in ["upgrade", "connection", "http2-settings"] {
            assert!(!seen.has_header(name), "{name} forwarded: {seen:?}");
        }
        // A websocket ask on another method than GET is not forwarded either.
        client.send(
            "OPTIONS / HTTP/1.1\r\nHost: test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert_eq!(client.read_response().status, 200);
        assert!(!backend.requests()[1].has_header("upgrade"));

        // A pool that allows h2c: forwarded, and its 101 opens a tunnel.
        let (addr, raw) = raw_backend(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nafter-101",
    );
        let dir = TempDir::new("h2c");
        let path = dir.path().join("h2c.toml");
        std::fs::write(
        &path,
        format!("[[pools]]\nname = \"default\"\nallow_upgrades = [\"h2c\"]\nbackends = [{{ addr = \"{addr}\" }}]\n"),
    )
    .unwrap();
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--config",
            path.to_str().unwrap(),
            "--admin",
            "off",
        ]);
        let mut client = proxy.client();
        client.send(h2c);
        let res = client.read_response();
        assert_eq!(res.status, 101, "{res:?}");
        assert_eq!(res.header("upgrade"), Some("h2c"));
        assert_eq!(client.conn.read_exact_bytes(9).unwrap(), b"after-101");
        client.send("raw bytes both ways");
        assert_eq!(
            client.conn.read_exact_bytes(19).unwrap(),
            b"raw bytes both ways"
        );
        client
            .conn
            .stream
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
        let rest = client.conn.read_to_eof().unwrap_or_default();
        assert!(rest.is_empty(), "{rest:?}");
        let got = String::from_utf8(raw.join().unwrap()).unwrap();
        assert!(
            got.contains("\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"),
            "{got}"
        );
        assert!(
            !got.contains("HTTP2-Settings"),
            "listed in Connection: hop-by-hop: {got}"
        );
        assert!(got.ends_with("raw bytes both ways"), "{got}");
    }
);

both_drivers!(
    asking_to_upgrade_with_a_body_or_by_connect_is_refused,
    |driver| {
        let backend = Backend::echo();
        let proxy = Proxy::with_backends(driver, &[&backend], &["--admin", "off"]);
        let r = expect_error(
            &proxy,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
          Content-Length: 5\r\n\r\nhello",
            400,
        );
        assert!(r.body_str().contains("upgrade"), "{r:?}");
        expect_error(
            &proxy,
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        );
        expect_error(
            &proxy,
            b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
            501,
        );
        assert_eq!(backend.request_count(), 0);
    }
);
