//! Real clients and a real server through corelb: curl, Python's
//! http.client, wrk, and nginx as a backend. A missing program fails the
//! test (CI installs them; run .ci/run).

#[macro_use]
mod common;

use std::process::{Command, Output};

use common::*;

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn curl() -> Command {
    require_tool("curl");
    let mut c = Command::new("curl");
    // --max-time is a safety bound only
    c.args(["-s", "-S", "--max-time", "10", "--noproxy", "*"]);
    c
}

both_drivers!(curl_get_and_post, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let out = run(curl()
        .args([
            "-o",
            "-",
            "-w",
            "%{http_code}",
            "--data-binary",
            "hello curl",
        ])
        .arg(proxy.url("/c")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello curl200");
    let out = run(curl()
        .args(["-o", "-", "-w", "%{http_code}"])
        .arg(proxy.url("/empty")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let reqs = backend.requests();
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[1].method, "GET");
    assert!(reqs[0]
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("curl/")));
});

both_drivers!(curl_reuses_its_connection_across_urls, |driver| {
    let backend = Backend::echo_name("b");
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let out = run(curl()
        .args(["-w", "%{http_code} %{num_connects}\n", "-o", "/dev/null"])
        .arg(proxy.url("/1"))
        .args(["-w", "%{http_code} %{num_connects}\n", "-o", "/dev/null"])
        .arg(proxy.url("/2"))
        .args(["-w", "%{http_code} %{num_connects}\n", "-o", "/dev/null"])
        .arg(proxy.url("/3")));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // one new connection, then two reuses
    assert_eq!(text, "200 1\n200 0\n200 0\n", "{text}");
    assert_eq!(backend.request_count(), 3);
    assert_eq!(backend.connections(), 1);
});

both_drivers!(curl_upload_with_expect_100_continue, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let dir = TempDir::new("curl");
    let body = pattern(3 * 1024 * 1024, 21);
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    std::fs::write(&input, &body).unwrap();
    // curl waits for `100 Continue` (up to its expect timeout) before sending
    let out = run(curl()
        .args([
            "-H",
            "Expect: 100-continue",
            "--expect100-timeout",
            "10",
            "-w",
            "%{http_code}",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", input.display()))
        .arg("-o")
        .arg(&output)
        .arg(proxy.url("/upload")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    assert_eq!(sha256(&std::fs::read(&output).unwrap()), sha256(&body));
    let req = &backend.requests()[0];
    assert!(!req.has_header("expect"));
    // chunked upload from curl
    let out = run(curl()
        .args(["-H", "Transfer-Encoding: chunked", "-w", "%{http_code}"])
        .arg("--data-binary")
        .arg(format!("@{}", input.display()))
        .arg("-o")
        .arg(&output)
        .arg(proxy.url("/upload-chunked")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    assert_eq!(sha256(&std::fs::read(&output).unwrap()), sha256(&body));
    assert!(backend.requests()[1].chunked);
});

const PY_CLIENT: &str = r#"
import http.client, sys
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
socks = set()
for i in range(6):
    body = (b"%d" % i) * (i * 1000)
    c.request("POST", "/py/%d" % i, body=body, headers={"X-Test": "py"})
    r = c.getresponse()
    data = r.read()
    socks.add(id(c.sock))
    print("post", i, r.status, data == body)
c.request("GET", "/py/get")
r = c.getresponse()
print("get", r.status, r.read() == b"")
socks.add(id(c.sock))
c.request("PUT", "/py/chunked", body=iter([b"ab", b"cd", b"ef"]), encode_chunked=True)
r = c.getresponse()
print("chunked", r.status, r.read() == b"abcdef")
socks.add(id(c.sock))
print("sockets", len(socks))
"#;

both_drivers!(python_http_client_keep_alive, |driver| {
    require_tool("python3");
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let out = run(Command::new("python3")
        .args(["-c", PY_CLIENT])
        .arg(proxy.addr().port().to_string()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut expected: Vec<String> = (0..6).map(|i| format!("post {i} 200 True")).collect();
    expected.push("get 200 True".into());
    expected.push("chunked 200 True".into());
    expected.push("sockets 1".into());
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
    assert_eq!(backend.request_count(), 8);
    assert_eq!(backend.connections(), 1);
    let reqs = backend.requests();
    assert_eq!(reqs[3].header("x-test"), Some("py"));
    assert!(reqs[7].chunked);
});

both_drivers!(wrk_short_run_has_no_errors, |driver| {
    require_tool("wrk");
    let a = Backend::echo_name("a");
    let b = Backend::echo_name("b");
    let proxy = Proxy::with_backends(driver, &[&a, &b], &[]);
    let out = run(Command::new("wrk")
        .args(["-t1", "-c10", "-d2s", "--timeout", "5s"])
        .arg(proxy.url("/wrk")));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests: u64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no request count in wrk output:\n{text}"));
    assert!(requests > 0, "{text}");
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw error responses:\n{text}"
    );
    assert!(
        !text.contains("Socket errors"),
        "wrk saw socket errors:\n{text}"
    );
    let served = (a.request_count() + b.request_count()) as u64;
    assert!(
        served >= requests,
        "backends served {served}, wrk counted {requests}"
    );
    // wrk's 10 connections are kept alive on both sides
    assert!(
        a.connections() <= 10 && b.connections() <= 10,
        "{} {}",
        a.connections(),
        b.connections()
    );
});

fn start_nginx() -> (Nginx, Vec<u8>) {
    let blob = pattern(1024 * 1024 + 17, 42);
    let file = blob.clone();
    let nginx = Nginx::start(
        r#"
    location = /hello { return 200 "hello from nginx conn=$connection\n"; }
    location = /headers {
        return 200 "xff=$http_x_forwarded_for proto=$http_x_forwarded_proto via=$http_via connection=$http_connection\n";
    }
    location /static/ { root {prefix}/www; }
"#,
        move |dir| {
            std::fs::create_dir_all(dir.join("www/static")).unwrap();
            std::fs::write(dir.join("www/static/blob.bin"), &file).unwrap();
        },
    );
    (nginx, blob)
}

both_drivers!(nginx_backend, |driver| {
    let (nginx, blob) = start_nginx();
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &nginx.addr.to_string(),
    ]);
    let mut client = proxy.client();

    let mut upstream_conns = Vec::new();
    for _ in 0..5 {
        let r = client.get("/hello");
        assert_eq!(r.status, 200, "{r:?}");
        let body = r.body_str();
        let conn = body
            .strip_prefix("hello from nginx conn=")
            .unwrap_or_else(|| panic!("{body:?}"))
            .trim()
            .to_string();
        upstream_conns.push(conn);
        assert!(!r.says_close());
    }
    upstream_conns.dedup();
    assert_eq!(
        upstream_conns.len(),
        1,
        "upstream connection to nginx not kept alive: {upstream_conns:?}"
    );

    let r = client.get("/static/blob.bin");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(blob.len().to_string().as_str())
    );
    assert_eq!(sha256(&r.body), sha256(&blob));

    client.send("HEAD /static/blob.bin HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = client.read_head_response();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(blob.len().to_string().as_str())
    );

    let r = client.get("/static/missing");
    assert_eq!(r.status, 404);
    assert!(
        r.header("server").is_some_and(|s| s.starts_with("nginx")),
        "{r:?}"
    );

    client.send("GET /headers HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive\r\n\r\n");
    let r = client.read_response();
    assert_eq!(
        r.body_str(),
        "xff=10.0.0.1, 127.0.0.1 proto=http via=1.1 corelb connection=\n",
        "{r:?}"
    );

    // conditional request: 304 without a body, connection still usable
    let r = client.get("/static/blob.bin");
    let etag = r.header("etag").expect("nginx sends an ETag").to_string();
    client.send(format!(
        "GET /static/blob.bin HTTP/1.1\r\nHost: test\r\nIf-None-Match: {etag}\r\n\r\n"
    ));
    let r = client.read_response();
    assert_eq!(r.status, 304, "{r:?}");
    assert_eq!(client.get("/hello").status, 200);
});
