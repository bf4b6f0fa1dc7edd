//! PROXY protocol, both ways: a `proxy-protocol` listener takes the
//! client's address from the header of a trusted L4 hop (Debian's HAProxy
//! with `send-proxy-v2`, and raw v1/v2 headers written here), and a pool
//! with `send_proxy_protocol` tells its backends (nginx with `listen …
//! proxy_protocol`, answering `$proxy_protocol_addr`). Clients take
//! addresses of their own on loopback (127.0.0.5, …) so the address that
//! arrives shows which hop it came from. Hostile headers (from untrusted
//! peers, missing, malformed, truncated, oversized, split) are closed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(SAFETY)).unwrap();
    stream
}

/// Send `bytes` then a GET, read to EOF: the answer, or "" if corelb
/// closed without one.
fn exchange(mut stream: TcpStream, bytes: &[u8]) -> String {
    let _ = stream.write_all(bytes);
    let _ = stream.write_all(b"GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 80\r\n").into_bytes()
}

fn v2(client: [u8; 4]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1, 0x9c, 0x40, 0, 80]);
    h
}

/// corelb with one `proxy-protocol` listener trusting `trusted`, in
/// front of `backend`, plus `extra` flags.
fn proxy_protocol_proxy(driver: Driver, backend: &Backend, trusted: &str, extra: &[&str]) -> Proxy {
    let addr = backend.addr().to_string();
    let mut args = vec![
        "--io-driver",
        driver.as_str(),
        "--backend",
        &addr,
        "--listen",
        "127.0.0.1:0,proxy-protocol",
        "--proxy-protocol-from",
        trusted,
    ];
    args.extend_from_slice(extra);
    Proxy::start(&args)
}

/// The `X-Forwarded-For` of the backend's last request.
fn last_xff(backend: &Backend) -> String {
    let requests = backend.requests();
    let last = requests.last().expect("the backend got a request");
    last.header("x-forwarded-for")
        .unwrap_or_default()
        .to_string()
}

both_drivers!(raw_v1_and_v2_headers_carry_the_client_address, |driver| {
    let backend = Backend::echo();
    let proxy = proxy_protocol_proxy(driver, &backend, "127.0.0.1", &[]);
    let answer = exchange(connect_from("127.0.0.1", proxy.addr()), &v1("192.0.2.7"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(last_xff(&backend), "192.0.2.7");
    let answer = exchange(
        connect_from("127.0.0.1", proxy.addr()),
        &v2([198, 51, 100, 4]),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(last_xff(&backend), "198.51.100.4");
    // v2 LOCAL (an L4 hop's own check): the peer's own address.
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    let answer = exchange(connect_from("127.0.0.1", proxy.addr()), local);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(last_xff(&backend), "127.0.0.1");
});

both_drivers!(a_header_split_across_reads_is_read_whole, |driver| {
    let backend = Backend::echo();
    let proxy = proxy_protocol_proxy(driver, &backend, "127.0.0.1", &[]);
    for header in [v1("203.0.113.9"), v2([203, 0, 113, 9])] {
        let mut stream = connect_from("127.0.0.1", proxy.addr());
        stream.set_nodelay(true).unwrap();
        for byte in &header {
            stream.write_all(std::slice::from_ref(byte)).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
        let answer = exchange(stream, b"");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(last_xff(&backend), "203.0.113.9");
    }
});

both_drivers!(hostile_headers_are_closed_without_an_answer, |driver| {
    let backend = Backend::echo();
    // Only 127.0.0.1 may send headers; 127.0.0.9 may not.
    let proxy = proxy_protocol_proxy(
        driver,
        &backend,
        "127.0.0.1/32",
        &["--client-header-timeout", "1s"],
    );
    let mut oversized = v2([192, 0, 2, 1]);
    oversized[14..16].copy_from_slice(&4000u16.to_be_bytes());
    let mut wrong_version = v2([192, 0, 2, 1]);
    wrong_version[12] = 0x31;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("a trusted peer sending no header", "127.0.0.1", Vec::new()),
        ("an untrusted peer sending v1", "127.0.0.9", v1("192.0.2.1")),
        (
            "an untrusted peer sending v2",
            "127.0.0.9",
            v2([192, 0, 2, 1]),
        ),
        (
            "malformed v1",
            "127.0.0.1",
            b"PROXY TCP4 192.0.2.1 nowhere 1 2\r\n".to_vec(),
        ),
        (
            "v1 without CRLF",
            "127.0.0.1",
            [b"PROXY TCP4 ".as_slice(), &[b'9'; 200]].concat(),
        ),
        ("v2 of another version", "127.0.0.1", wrong_version),
        ("oversized v2", "127.0.0.1", oversized),
    ];
    for (what, from, header) in cases {
        let answer = exchange(connect_from(from, proxy.addr()), &header);
        assert_eq!(answer, "", "{what}: {answer}");
    }
    // Truncated: half a header, then nothing; closed at the header timeout.
    let mut stream = connect_from("127.0.0.1", proxy.addr());
    stream.write_all(&v2([192, 0, 2, 1])[..20]).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty() && started.elapsed() < SAFETY, "{rest:?}");
    // Nothing of it reached the backend, and corelb still serves: an
    // untrusted peer without a header is served with its own address.
    assert_eq!(backend.request_count(), 0);
    let answer = exchange(connect_from("127.0.0.9", proxy.addr()), b"");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(last_xff(&backend), "127.0.0.9");
    assert!(
        proxy.log().contains("PROXY protocol listener"),
        "{}",
        proxy.log()
    );
});

both_drivers!(the_per_ip_limit_counts_the_carried_address, |driver| {
    let backend =
        Backend::start(|_| Reply::After(Duration::from_millis(800), Box::new(Reply::ok("slow"))));
    let proxy = proxy_protocol_proxy(
        driver,
        &backend,
        "127.0.0.1",
        &["--max-connections-per-ip", "1"],
    );
    // Two clients behind the same L4 hop: each gets its place; the same
    // client a second time while its first is open is refused.
    let addr = proxy.addr();
    let first =
        std::thread::spawn(move || exchange(connect_from("127.0.0.1", addr), &v1("192.0.2.1")));
    std::thread::sleep(Duration::from_millis(200));
    let again =
        std::thread::spawn(move || exchange(connect_from("127.0.0.1", addr), &v1("192.0.2.1")));
    let other = exchange(connect_from("127.0.0.1", proxy.addr()), &v1("192.0.2.2"));
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    let first = first.join().unwrap();
    let again = again.join().unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert_eq!(again, "", "the second connection of 192.0.2.1 was served");
});

both_drivers!(consistent_hashing_hashes_the_carried_address, |driver| {
    let a = Backend::echo_name("a");
    let b = Backend::echo_name("b");
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &a.addr().to_string(),
        "--backend",
        &b.addr().to_string(),
        "--algorithm",
        "consistent-hash",
        "--listen",
        "127.0.0.1:0,proxy-protocol",
        "--proxy-protocol-from",
        "127.0.0.0/8",
    ]);
    // Every connection comes from 127.0.0.1; the clients behind it differ.
    let mut first_pick = Vec::new();
    for i in 1..=20u8 {
        let answer = exchange(connect_from("127.0.0.1", proxy.addr()), &v2([192, 0, 2, i]));
        first_pick.push(answer.ends_with('a'));
    }
    assert!(
        first_pick.iter().any(|&x| x) && first_pick.iter().any(|&x| !x),
        "all 20 clients went to one backend"
    );
    for i in 1..=20u8 {
        let answer = exchange(
            connect_from("127.0.0.1", proxy.addr()),
            &v1(&format!("192.0.2.{i}")),
        );
        assert_eq!(
            answer.ends_with('a'),
            first_pick[usize::from(i - 1)],
            "client {i} moved: {answer}"
        );
    }
});

/// HAProxy in TCP mode on a free port, `send-proxy-v2` to `corelb`, with
/// checks that send a header too (`check-send-proxy`).
struct Haproxy {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Haproxy {
    fn start(corelb: SocketAddr) -> Haproxy {
        require_tool("haproxy");
        let dir = TempDir::new("haproxy");
        let port = free_port();
        let conf = format!(
            "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
             backend be\n  server corelb {corelb} send-proxy-v2 check check-send-proxy inter 200ms\n"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start haproxy");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + SAFETY;
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Haproxy {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both_drivers!(haproxy_send_proxy_v2_in_front, |driver| {
    let backend = Backend::echo();
    let dir = TempDir::new("log");
    let log = dir.path().join("access.log");
    let proxy = proxy_protocol_proxy(
        driver,
        &backend,
        "127.0.0.1",
        &["--access-log", log.to_str().unwrap()],
    );
    let haproxy = Haproxy::start(proxy.addr());
    for from in ["127.0.0.5", "127.0.0.6"] {
        let answer = exchange(connect_from(from, haproxy.addr), b"");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(last_xff(&backend), from);
    }
    // HAProxy's checks (a LOCAL header, then a close) are not refusals.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !proxy.log().contains("PROXY protocol listener"),
        "{}",
        proxy.log()
    );
    // The access log is written out once a second.
    let deadline = Instant::now() + SAFETY;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("127.0.0.5") && text.contains("127.0.0.6") {
            break;
        }
        assert!(Instant::now() < deadline, "access log: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
});

both_drivers!(
    nginx_behind_send_proxy_protocol_gets_the_client_address,
    |driver| {
        let nginx = Nginx::start_listening(
            " proxy_protocol",
            r#"
    location = /who { return 200 "pp=$proxy_protocol_addr"; }
    location = /health { access_log {prefix}/health.log; return 200 "ok"; }
"#,
            |_| {},
        );
        for version in ["v1", "v2"] {
            let config = format!(
                "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[pools]]\nname = \"default\"\n\
             send_proxy_protocol = \"{version}\"\nhealth_path = \"/health\"\n\
             backends = [{{ addr = \"{}\" }}]\n",
                nginx.addr
            );
            let (proxy, _dir) = Proxy::with_config(
                driver,
                &config,
                &["--admin", "127.0.0.1:0", "--health-interval", "100ms"],
            );
            for from in ["127.0.0.7", "127.0.0.8"] {
                let answer = exchange(connect_from(from, proxy.addr()), b"");
                assert!(
                    answer.ends_with(&format!("pp={from}")),
                    "{version}: {answer}"
                );
            }
            // The probes send a header too (nginx closes on any without one)
            // and keep the backend up.
            let probes = || {
                let text = std::fs::read_to_string(nginx.dir.path().join("health.log"));
                text.unwrap_or_default().lines().count()
            };
            let before = probes();
            let deadline = Instant::now() + SAFETY;
            while probes() < before + 3 {
                assert!(
                    Instant::now() < deadline,
                    "{version}: no probe reached nginx"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_eq!(common::admin::state(proxy.admin_addr(), nginx.addr), "up");
        }
    }
);

both_drivers!(
    a_tls_listener_reads_the_header_before_the_handshake,
    |driver| {
        use common::tls::{read_response, KeyKind, TestCa};
        let backend = Backend::echo();
        let dir = TempDir::new("tls");
        let ca = TestCa::new(dir.path());
        let (cert, key) = ca.issue("localhost", &["localhost"], KeyKind::EcdsaP256, 30);
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--backend",
            &backend.addr().to_string(),
            "--listen",
            "127.0.0.1:0,tls,proxy-protocol",
            "--proxy-protocol-from",
            "127.0.0.1",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        let mut tcp = connect_from("127.0.0.1", proxy.addr());
        tcp.write_all(&v2([192, 0, 2, 44])).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(ca.client_config(&[]), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(b"GET /who HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let (status, _, _) = read_response(&mut tls).unwrap();
        assert_eq!(status, 200);
        assert_eq!(last_xff(&backend), "192.0.2.44");
    }
);
