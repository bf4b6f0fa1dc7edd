//! What the admin API refuses, sent by a raw client: a `Host` that does
//! not name it (DNS rebinding) for any request, and for calls that change
//! state an `Origin` or `Sec-Fetch-Site` saying a page of another origin
//! sent it, or a body that is not `application/json`. Each refusal is a
//! 403 with a JSON reason, and changes nothing; the calls a browser page
//! of the API itself, curl or a script make still work, and the `Bearer`
//! scheme is matched in any case.

mod common;

use std::net::SocketAddr;

use common::admin::{backend_states, proxy_with_admin};
use common::{Backend, Client, Response};

/// `METHOD path` to the admin API with `Host: host`, `headers` and `body`.
fn call(
    admin: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let mut c = Client::connect(admin);
    c.send(head);
    c.read_response()
}

/// The `error` of a JSON answer.
fn error_of(res: &Response) -> String {
    let doc: serde_json::Value = serde_json::from_slice(&res.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", res.body_str()));
    doc["error"].as_str().unwrap_or_default().to_string()
}

const JSON: &str = "Content-Type: application/json";

#[test]
fn a_host_that_is_not_the_admin_api_is_refused_for_every_call() {
    let backend = Backend::echo_name("a");
    let proxy = proxy_with_admin(&backend, &["--admin-host", "corelb.test"]);
    let admin = proxy.admin_addr();
    let port = admin.port();
    let before = backend_states(admin);

    // DNS rebinding: the page's own name, pointed at the admin address.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("127.0.0.1.evil.example:{port}"),
        format!("10.9.9.9:{port}"),
        format!("[::1:{port}"),
    ] {
        // A Host that is not even well-formed is refused by the HTTP
        // parser itself (400), before the admin's own check (403).
        let refused = if host.starts_with('[') { 400 } else { 403 };
        for path in ["/status", "/metrics", "/"] {
            let res = call(admin, &host, "GET", path, &[], "");
            assert_eq!(res.status, refused, "GET {path} with Host {host}: {res:?}");
            assert!(error_of(&res).contains("Host"), "{res:?}");
        }
        let add = r#"{"addr": "127.0.0.1:1", "weight": 10000}"#;
        let res = call(
            admin,
            &host,
            "POST",
            "/pools/default/backends",
            &[JSON],
            add,
        );
        assert_eq!(res.status, refused, "POST with Host {host}: {res:?}");
    }
    assert_eq!(
        backend_states(admin),
        before,
        "a refused call changed something"
    );

    // Names of the API itself.
    for host in [
        admin.to_string(),
        format!("localhost:{port}"),
        "LocalHost".to_string(),
        format!("127.0.0.2:{port}"),
        format!("[::1]:{port}"),
        format!("corelb.test:{port}"),
        "Corelb.Test".to_string(),
    ] {
        let res = call(admin, &host, "GET", "/status", &[], "");
        assert_eq!(res.status, 200, "GET /status with Host {host}: {res:?}");
    }
}

#[test]
fn pages_of_other_origins_and_bodies_that_are_not_json_change_nothing() {
    let (a, b) = (Backend::echo_name("a"), Backend::echo_name("b"));
    let proxy = proxy_with_admin(&a, &[]);
    let admin = proxy.admin_addr();
    let host = admin.to_string();
    let before = backend_states(admin);
    let add = format!(r#"{{"addr": "{}", "weight": 10000}}"#, b.addr());
    let drain = format!("/pools/default/backends/{}/drain", a.addr());
    let pools = "/pools/default/backends";

    let refusals: &[(&[&str], &str)] = &[
        (&[JSON, "Origin: http://127.0.0.1:8000"], "Origin"),
        (&[JSON, "Origin: http://evil.example"], "Origin"),
        (&[JSON, "Origin: null"], "Origin"),
        (&[JSON, "Sec-Fetch-Site: cross-site"], "Sec-Fetch-Site"),
        (&[JSON, "Sec-Fetch-Site: same-site"], "Sec-Fetch-Site"),
        (&["Content-Type: text/plain"], "Content-Type"),
        (&["Content-Type: text/plain;charset=UTF-8"], "Content-Type"),
        (
            &["Content-Type: application/x-www-form-urlencoded"],
            "Content-Type",
        ),
        (&[], "Content-Type"),
    ];
    for (headers, reason) in refusals {
        for (method, path, body) in [
            ("POST", pools, add.as_str()),
            ("POST", drain.as_str(), ""),
            ("POST", "/reload", ""),
            (
                "PUT",
                &format!("{pools}/{}/weight", a.addr()),
                r#"{"weight": 7}"#,
            ),
            ("DELETE", &format!("{pools}/{}", a.addr()), ""),
        ] {
            let res = call(admin, &host, method, path, headers, body);
            assert_eq!(res.status, 403, "{method} {path} with {headers:?}: {res:?}");
            let why = error_of(&res);
            assert!(why.contains(reason), "{headers:?}: {why}");
        }
    }
    assert_eq!(
        backend_states(admin),
        before,
        "a refused call changed something"
    );
    assert!(
        proxy.log().contains("admin API: refused POST"),
        "refusals are not logged:\n{}",
        proxy.log()
    );

    // The API's own page, curl and scripts.
    let own = format!("Origin: http://{host}");
    let res = call(
        admin,
        &host,
        "POST",
        pools,
        &[
            "Content-Type: Application/JSON; charset=utf-8",
            &own,
            "Sec-Fetch-Site: same-origin",
        ],
        &add,
    );
    assert_eq!(res.status, 200, "{res:?}");
    let res = call(admin, &host, "POST", &drain, &[JSON], "");
    assert_eq!(res.status, 200, "{res:?}");
    let (generation, backends) = backend_states(admin);
    assert_eq!(generation, before.0 + 2);
    assert!(
        backends.contains(&(b.addr().to_string(), "up".into())),
        "{backends:?}"
    );
    assert!(
        backends.contains(&(a.addr().to_string(), "draining".into())),
        "{backends:?}"
    );
}

#[test]
fn the_bearer_scheme_is_matched_in_any_case() {
    let (a, b) = (Backend::echo_name("a"), Backend::echo_name("b"));
    let proxy = proxy_with_admin(&a, &["--admin-token", "s3cret"]);
    let admin = proxy.admin_addr();
    let host = admin.to_string();
    let add = format!(r#"{{"addr": "{}"}}"#, b.addr());
    let pools = "/pools/default/backends";
    for auth in [
        "Authorization: bearer wrong",
        "Authorization: Basic czNjcmV0",
    ] {
        let res = call(admin, &host, "POST", pools, &[JSON, auth], &add);
        assert_eq!(res.status, 401, "{auth}: {res:?}");
    }
    let res = call(
        admin,
        &host,
        "POST",
        pools,
        &[JSON, "Authorization: bearer s3cret"],
        &add,
    );
    assert_eq!(res.status, 200, "lower-case bearer: {res:?}");
    let drain = format!("{pools}/{}/drain", b.addr());
    let res = call(
        admin,
        &host,
        "POST",
        &drain,
        &[JSON, "Authorization: BEARER   s3cret"],
        "",
    );
    assert_eq!(res.status, 200, "upper-case BEARER: {res:?}");
}
