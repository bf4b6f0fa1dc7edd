//! HTTP/2 from clients, black-box over loopback: curl and nghttp over TLS
//! (ALPN h2) and h2c (prior knowledge), and raw frames from Python's `h2`
//! and `hyperframe` (`tests/h2/frames.py`) for the translation rules and
//! the floods, through corelb to plain HTTP/1.1 test backends.

mod common;

use std::process::Command;
use std::thread;
use std::time::Duration;

use common::admin::metric;
use common::tls::{KeyKind, TestCa};
use common::{
    chunked_body, require_tool, response, sha256, wait_until, Backend, Proxy, Reply, TempDir,
};
use serde_json::{json, Value};

fn curl(args: &[&str]) -> (String, String) {
    require_tool("curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("cannot run curl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `tests/h2/frames.py PORT SCENARIO ARG`: what the server did.
fn frames(port: u16, scenario: &str, arg: &str) -> Value {
    require_tool("python3");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2/frames.py");
    let out = Command::new("timeout")
        .args(["60", "python3", script, &port.to_string(), scenario, arg])
        .output()
        .expect("cannot run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "frames.py {scenario}: {e}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// One request by raw frames (see `request` in frames.py).
fn h2_request(port: u16, spec: Value) -> Value {
    frames(port, "request", &spec.to_string())
}

/// corelb with a plaintext listener taking h2c, before `backends`.
fn h2c_proxy(driver: common::Driver, backends: &[&Backend], extra: &[&str]) -> Proxy {
    let mut args = vec!["--listen", "127.0.0.1:0,h2c", "--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Proxy::with_backends(driver, backends, &args)
}

/// A CA and one certificate for `localhost`, in a temp dir.
struct Certs {
    _dir: TempDir,
    ca: String,
    cert: String,
    key: String,
}

fn localhost_certs() -> Certs {
    let dir = TempDir::new("h2-tls");
    let ca = TestCa::new(dir.path());
    let (cert, key) = ca.issue("localhost", &["localhost"], KeyKind::EcdsaP256, 30);
    Certs {
        ca: ca.cert().display().to_string(),
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        _dir: dir,
    }
}

/// corelb with a TLS listener (`tls` plus `options`, e.g. `,no-h2`).
fn tls_proxy(
    driver: common::Driver,
    certs: &Certs,
    options: &str,
    backends: &[&Backend],
    extra: &[&str],
) -> Proxy {
    let listen = format!("127.0.0.1:0,tls{options}");
    let mut args = vec![
        "--listen",
        &listen,
        "--tls-cert",
        &certs.cert,
        "--tls-key",
        &certs.key,
        "--admin",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Proxy::with_backends(driver, backends, &args)
}

/// curl's arguments to reach `path` on a TLS proxy as `localhost`.
fn https(certs: &Certs, proxy: &Proxy, path: &str) -> Vec<String> {
    let port = proxy.addr().port();
    vec![
        "--cacert".into(),
        certs.ca.clone(),
        "--resolve".into(),
        format!("localhost:{port}:127.0.0.1"),
        format!("https://localhost:{port}{path}"),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

both_drivers!(
    h2c_and_h2_over_tls_go_through_the_one_forwarding_path,
    |driver| {
        let backend = Backend::echo();
        let proxy = h2c_proxy(driver, &[&backend], &[]);
        let url = proxy.url("/hello?x=1");
        let (out, err) = curl(&[
            "--http2-prior-knowledge",
            "-w",
            "%{http_code} %{http_version}",
            "-o",
            "/dev/null",
            &url,
        ]);
        assert_eq!(out, "200 2", "curl: {err}\n{}", proxy.log());
        let seen = backend.requests().pop().expect("the backend saw it");
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            ("GET", "/hello?x=1")
        );
        assert_eq!(seen.version, 1, "HTTP/1.1 upstream");
        let authority = proxy.addr().to_string();
        assert_eq!(seen.header("Host"), Some(authority.as_str()), ":authority");
        assert_eq!(seen.header("X-Forwarded-Proto"), Some("http"));
        // HTTP/1.1 on the same listener, as ever.
        let (out, _) = curl(&[
            "-w",
            "%{http_code} %{http_version}",
            "-o",
            "/dev/null",
            &url,
        ]);
        assert_eq!(out, "200 1.1");

        // 10 MiB up (no length: chunked upstream) and back, over h2c and TLS.
        let certs = localhost_certs();
        let tls = tls_proxy(driver, &certs, "", &[&backend], &[]);
        let dir = TempDir::new("h2-body");
        let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        let up = dir.path().join("up.bin");
        std::fs::write(&up, &big).unwrap();
        let upload = format!("@{}", up.display());
        let down = dir.path().join("down.bin");
        let down_s = down.display().to_string();
        for (mut args, proto) in [
            (
                vec!["--http2-prior-knowledge".to_string(), proxy.url("/up")],
                "h2c",
            ),
            (
                [vec!["--http2".to_string()], https(&certs, &tls, "/up")].concat(),
                "h2",
            ),
        ] {
            let _ = std::fs::remove_file(&down);
            args.extend(
                [
                    "-H",
                    "Transfer-Encoding: chunked",
                    "--data-binary",
                    &upload,
                    "-o",
                    &down_s,
                    "-w",
                    "%{http_code} %{http_version}",
                ]
                .map(String::from),
            );
            let (out, err) = curl(&strs(&args));
            assert_eq!(out, "200 2", "{proto}: {err}");
            let back = std::fs::read(&down).unwrap();
            assert_eq!(back.len(), big.len(), "{proto}");
            assert_eq!(sha256(&back), sha256(&big), "{proto}");
            let seen = backend.requests().pop().unwrap();
            assert_eq!(seen.body.len(), big.len(), "{proto}");
        }
        let seen = backend.requests().pop().unwrap();
        assert_eq!(seen.header("X-Forwarded-Proto"), Some("https"));
        assert_eq!(metric(tls.admin_addr(), "corelb_h2_connections_total"), 1.0);

        // A TLS listener that opts out offers only http/1.1 by ALPN.
        let h1_only = tls_proxy(driver, &certs, ",no-h2", &[&backend], &[]);
        let mut args = vec!["--http2".to_string(), "-w".into(), "%{http_version}".into()];
        args.extend(["-o".into(), "/dev/null".into()]);
        args.extend(https(&certs, &h1_only, "/"));
        assert_eq!(curl(&strs(&args)).0, "1.1");
    }
);

both_drivers!(
    a_hundred_streams_on_one_connection_spread_over_the_backends,
    |driver| {
        require_tool("nghttp");
        let backends: Vec<Backend> = (0..3)
            .map(|i| Backend::echo_name(&format!("b{i}")))
            .collect();
        let refs: Vec<&Backend> = backends.iter().collect();
        let certs = localhost_certs();
        let proxy = tls_proxy(driver, &certs, "", &refs, &[]);
        let url = format!("https://localhost:{}/", proxy.addr().port());
        // nghttp does not check the certificate; -m 100: the same request 100
        // times, all at once on one connection (-n: bodies discarded).
        let out = Command::new("timeout")
            .args(["60", "nghttp", "-n", "-s", "-m", "100"])
            .arg(format!("--header=host: localhost:{}", proxy.addr().port()))
            .arg(url.replace("localhost", "127.0.0.1"))
            .output()
            .expect("cannot run nghttp");
        let stats = String::from_utf8_lossy(&out.stdout);
        let ok = stats.lines().filter(|l| l.contains(" 200 ")).count();
        assert_eq!(
            ok,
            100,
            "nghttp: {stats}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let counts: Vec<usize> = backends.iter().map(Backend::request_count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 100, "{counts:?}");
        assert!(
            counts.iter().all(|&c| c >= 20),
            "round robin spreads them: {counts:?}"
        );
        let admin = proxy.admin_addr();
        assert_eq!(metric(admin, "corelb_h2_connections_total"), 1.0);
        assert_eq!(
            metric(admin, "corelb_h2_streams_total{result=\"ok\"}"),
            100.0
        );
    }
);

/// Answers by path: HEAD/204/304 shapes, a large head, a gRPC-style
/// chunked answer with trailers, hop-by-hop fields.
fn shapes_backend() -> Backend {
    Backend::start(|req| {
        let path = req.path.as_str();
        match path {
            "/204" => Reply::Raw(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
            "/304" => Reply::Raw(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec()),
            "/large" => {
                let big = "v".repeat(12_000);
                Reply::Raw(response(200, "OK", &[("X-Large", &big)], b"large"))
            }
            "/hop" => Reply::Raw(response(
                200,
                "OK",
                &[
                    ("Keep-Alive", "timeout=5"),
                    ("Connection", "keep-alive, x-private"),
                    ("X-Private", "1"),
                ],
                b"hop",
            )),
            "/grpc" => {
                // The request body back, in three chunks, then trailers.
                let mut out =
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n\r\n"
                        .to_vec();
                let body = chunked_body(&req.body, req.body.len().div_ceil(3).max(1));
                out.extend_from_slice(&body[..body.len() - 2]);
                out.extend_from_slice(b"grpc-status: 0\r\ngrpc-message: fine\r\n\r\n");
                Reply::Raw(out)
            }
            _ => Reply::Raw(response(200, "OK", &[], b"hello")),
        }
    })
}

both_drivers!(heads_empty_answers_large_heads_and_trailers, |driver| {
    let backend = shapes_backend();
    let proxy = h2c_proxy(driver, &[&backend], &[]);
    let port = proxy.addr().port();

    let r = h2_request(port, json!({"method": "HEAD", "path": "/"}));
    assert_eq!(
        (r["status"].as_u64(), r["body"].as_str()),
        (Some(200), Some(""))
    );
    assert_eq!(r["headers"]["content-length"], "5");
    for (path, status) in [("/204", 204), ("/304", 304)] {
        let r = h2_request(port, json!({"path": path}));
        assert_eq!(r["status"].as_u64(), Some(status), "{r}");
        assert_eq!(r["body"], "", "{r}");
        assert!(r["reset"].is_null(), "{r}");
    }
    let r = h2_request(port, json!({"path": "/large"}));
    assert_eq!(r["headers"]["x-large"].as_str().map(str::len), Some(12_000));
    assert_eq!(r["body"], "large");

    // Hop-by-hop fields of the backend's answer mean nothing in HTTP/2.
    let r = h2_request(port, json!({"path": "/hop"}));
    assert_eq!(r["body"], "hop");
    for name in ["connection", "keep-alive", "x-private", "transfer-encoding"] {
        assert!(r["headers"].get(name).is_none(), "{name}: {r}");
    }

    // gRPC-style: te: trailers, a body in several DATA frames (no length:
    // chunked upstream), a chunked answer whose trailers come back as
    // HTTP/2 trailers.
    let r = h2_request(
        port,
        json!({"method": "POST", "path": "/grpc",
               "headers": [["te", "trailers"], ["content-type", "application/grpc"]],
               "body": ["first,", "second,", "third"]}),
    );
    assert_eq!(r["status"].as_u64(), Some(200), "{r}");
    assert_eq!(r["body"], "first,second,third");
    assert_eq!(r["trailers"]["grpc-status"], "0", "{r}");
    assert_eq!(r["trailers"]["grpc-message"], "fine", "{r}");
    let seen = backend.requests().pop().unwrap();
    assert!(seen.chunked, "a body without length goes chunked");
    assert_eq!(seen.body, b"first,second,third");
});

both_drivers!(translation_rules_hold, |driver| {
    let backend = Backend::echo();
    let proxy = h2c_proxy(driver, &[&backend], &[]);
    let port = proxy.addr().port();

    // Cookies sent as separate fields reach the backend as one.
    let r = h2_request(
        port,
        json!({"path": "/c", "headers": [["cookie", "a=1"], ["cookie", "b=2"]]}),
    );
    assert_eq!(r["status"].as_u64(), Some(200));
    let seen = backend.requests().pop().unwrap();
    assert_eq!(seen.header_all("Cookie"), ["a=1; b=2"]);
    assert_eq!(seen.header("Host"), Some("example.test"));

    // Connection-specific fields: the stream is reset (PROTOCOL_ERROR)
    // and nothing reaches the backend.
    let before = backend.request_count();
    for (name, value) in [
        ("connection", "keep-alive"),
        ("keep-alive", "5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("te", "gzip"),
    ] {
        let r = h2_request(port, json!({"path": "/x", "headers": [[name, value]]}));
        assert_eq!(r["reset"].as_u64(), Some(1), "{name}: {r}");
    }
    // A body shorter than its Content-Length: reset, never forwarded whole.
    let r = h2_request(
        port,
        json!({"method": "POST", "path": "/x", "headers": [["content-length", "10"]], "body": ["abc"]}),
    );
    assert_eq!(r["reset"].as_u64(), Some(1), "{r}");
    assert_eq!(backend.request_count(), before, "nothing forwarded");
    // TE: trailers is allowed.
    let r = h2_request(
        port,
        json!({"path": "/te", "headers": [["te", "trailers"]]}),
    );
    assert_eq!(r["status"].as_u64(), Some(200), "{r}");
    // CONNECT stays 501.
    let r = h2_request(port, json!({"method": "CONNECT", "connect": true}));
    assert_eq!(r["status"].as_u64(), Some(501), "{r}");
});

#[test]
fn a_graceful_stop_lets_ten_streams_in_flight_finish_then_says_goaway() {
    require_tool("nghttp");
    let backend =
        Backend::start(|_| Reply::After(Duration::from_millis(1500), Box::new(Reply::ok("done"))));
    let mut proxy = h2c_proxy(common::Driver::Uring, &[&backend], &[]);
    let url = proxy.url("/slow");
    let client = thread::spawn(move || {
        Command::new("timeout")
            .args(["60", "nghttp", "-v", "-n", "-m", "10", &url])
            .output()
            .expect("cannot run nghttp")
    });
    wait_until("ten streams reach the backend", || {
        backend.request_count() == 10
    });
    proxy.signal("TERM");
    let out = client.join().unwrap();
    let stats = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stats.matches(":status: 200").count(),
        10,
        "{stats}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stats.contains("recv GOAWAY frame"), "no GOAWAY: {stats}");
    proxy.stopped = true;
    assert_eq!(
        proxy.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        proxy.log()
    );
}

/// Can another client still get an answer, by h2c and by HTTP/1.1?
fn still_serving(proxy: &Proxy) {
    let url = proxy.url("/");
    let (out, err) = curl(&[
        "--http2-prior-knowledge",
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(out, "200", "h2c after a flood: {err}");
    let (out, err) = curl(&["-w", "%{http_code}", "-o", "/dev/null", &url]);
    assert_eq!(out, "200", "HTTP/1.1 after a flood: {err}");
}

both_drivers!(
    floods_end_the_flooders_connection_and_spare_everyone_else,
    |driver| {
        let backend = Backend::start(|req| match req.path.as_str() {
            "/big" => Reply::ok(vec![b'x'; 8 << 20]),
            _ => Reply::ok("ok"),
        });
        let proxy = h2c_proxy(driver, &[&backend], &["--client-idle-timeout", "2s"]);
        let port = proxy.addr().port();
        let admin = proxy.admin_addr();
        let calm = "corelb_h2_connection_errors_total{reason=\"enhance_your_calm\"}";
        // Each of these ends in GOAWAY ENHANCE_YOUR_CALM (11).
        for (scenario, arg) in [
            ("rapid_reset", "3000"),
            ("made_you_reset", "3000"),
            ("continuation", "10000"),
            ("hpack_bomb", "4000"),
            ("empty_data_flood", "100000"),
        ] {
            let before = metric(admin, calm);
            let r = frames(port, scenario, arg);
            assert_eq!(
                r["goaway"].as_u64(),
                Some(11),
                "{scenario}: {r}\n{}",
                proxy.log()
            );
            wait_until("the GOAWAY is counted", || metric(admin, calm) > before);
            still_serving(&proxy);
        }
        // SETTINGS, PING and WINDOW_UPDATE floods from a client that reads
        // nothing: the server's answers back up and it stops reading, so the
        // flood costs one connection's buffers; it ends at the idle timeout.
        for scenario in ["settings_flood", "ping_flood", "window_update_flood"] {
            let r = frames(port, scenario, "100000");
            assert!(!r["goaway"].is_null(), "{scenario}: {r}");
            still_serving(&proxy);
        }
        // A client that never opens its window: the stream is reset once it
        // made no progress for --client-idle-timeout; others are served
        // meanwhile.
        let slow = thread::spawn(move || frames(port, "slow_reader", "8"));
        thread::sleep(Duration::from_millis(300));
        still_serving(&proxy);
        let r = slow.join().unwrap();
        assert_eq!(
            (r["head"].as_bool(), r["reset"].as_u64()),
            (Some(true), Some(2)),
            "{r}"
        );
    }
);

/// What RFC 9113 asks of a server for one of frames.py's conformance
/// cases (the vendored `h2` answers each with the RFC's code:
/// `vendor/README.md`).
enum Expect {
    /// A connection error: GOAWAY with this code.
    Connection(u64),
    /// A stream error on stream 1 (RST_STREAM) while the connection goes on
    /// serving, or (RFC 9113 §5.4.1: an endpoint may treat a stream error
    /// as a connection error) a GOAWAY, with this code.
    Stream(u64),
    /// Nothing wrong: the request after it is answered on the same
    /// connection.
    Serves,
}

const PROTOCOL_ERROR: u64 = 0x1;
const FLOW_CONTROL_ERROR: u64 = 0x3;
const FRAME_SIZE_ERROR: u64 = 0x6;

both_drivers!(
    frame_sizes_settings_priority_stream_ids_and_unknown_frames,
    |driver| {
        use Expect::{Connection, Serves, Stream};
        let backend = Backend::echo();
        let proxy = h2c_proxy(driver, &[&backend], &[]);
        let port = proxy.addr().port();
        for (case, expect) in [
            ("data_too_large", Stream(FRAME_SIZE_ERROR)),
            ("headers_too_large", Connection(FRAME_SIZE_ERROR)),
            ("settings_ack_with_payload", Connection(FRAME_SIZE_ERROR)),
            ("settings_bad_length", Connection(FRAME_SIZE_ERROR)),
            ("ping_bad_length", Connection(FRAME_SIZE_ERROR)),
            ("window_update_bad_length", Connection(FRAME_SIZE_ERROR)),
            ("rst_stream_bad_length", Connection(FRAME_SIZE_ERROR)),
            ("enable_push_2", Connection(PROTOCOL_ERROR)),
            ("initial_window_too_large", Connection(FLOW_CONTROL_ERROR)),
            ("max_frame_size_too_small", Connection(PROTOCOL_ERROR)),
            ("max_frame_size_too_large", Connection(PROTOCOL_ERROR)),
            // A stream error: the stream is reset, the connection serves on.
            ("priority_bad_length", Stream(FRAME_SIZE_ERROR)),
            ("priority_self_dependency", Stream(PROTOCOL_ERROR)),
            ("headers_self_dependency", Stream(PROTOCOL_ERROR)),
            ("priority_idle", Serves),
            ("even_stream_id", Connection(PROTOCOL_ERROR)),
            ("unknown_frame_in_header_block", Connection(PROTOCOL_ERROR)),
            ("unknown_frame", Serves),
        ] {
            let r = frames(port, "conformance", case);
            match expect {
                Connection(code) => assert_eq!(r["goaway"].as_u64(), Some(code), "{case}: {r}"),
                Stream(code) if r["goaway"].is_null() => {
                    assert_eq!(r["resets"]["1"].as_u64(), Some(code), "{case}: {r}");
                    assert_eq!(r["status"].as_u64(), Some(200), "{case}: {r}");
                }
                Stream(code) => assert_eq!(r["goaway"].as_u64(), Some(code), "{case}: {r}"),
                Serves => {
                    assert!(r["goaway"].is_null(), "{case}: {r}");
                    assert_eq!(r["resets"], json!({}), "{case}: {r}");
                    assert_eq!(r["status"].as_u64(), Some(200), "{case}: {r}");
                }
            }
            still_serving(&proxy);
        }
    }
);

#[test]
fn a_file_listener_turns_h2c_on_and_a_wrong_protocol_names_its_line() {
    let backend = Backend::echo();
    let toml = |protocols: &str| {
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\nprotocols = {protocols}\n\n\
             [[pools]]\nname = \"default\"\nbackends = [{{ addr = \"{}\" }}]\n",
            backend.addr()
        )
    };
    let dir = TempDir::new("h2-protocols");
    let path = dir.path().join("corelb.toml");
    std::fs::write(&path, toml(r#"["http/1.1", "h2c"]"#)).unwrap();
    let path = path.to_str().unwrap();
    let proxy = Proxy::start_with_file_listeners(path, &[]);
    let url = proxy.url("/");
    let (out, err) = curl(&[
        "--http2-prior-knowledge",
        "-w",
        "%{http_version}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(out, "2", "{err}");

    std::fs::write(path, toml(r#"["http/1.1", "h2"]"#)).unwrap();
    let (code, err) = Proxy::start_failing(&["--config", path, "--check"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("corelb.toml:3")
            && err.contains("listeners[0].protocols")
            && err.contains("use `h2c`"),
        "{err}"
    );
}
