//! What each listener of several does on its own: the access log and
//! metrics name the listener a request came in on and its TLS session,
//! and a `[[listeners]]` entry may have its own default pool and routes.
//! A plaintext and a TLS listener side by side, real clients.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::admin::metric;
use common::tls::{get as tls_get, KeyKind, TestCa};
use common::{wait_until, Backend, Client, Proxy, TempDir};

/// A CA and a certificate for `localhost` in `dir`: (CA, chain, key).
fn localhost_cert(dir: &TempDir) -> (TestCa, String, String) {
    let ca = TestCa::new(dir.path());
    let (cert, key) = ca.issue("localhost", &["localhost"], KeyKind::EcdsaP256, 30);
    (ca, cert.display().to_string(), key.display().to_string())
}

/// One GET over TLS to `addr` for `path`: the body.
fn https_body(addr: SocketAddr, path: &str, config: &Arc<rustls::ClientConfig>) -> String {
    let (status, head, body) = tls_get(addr, "localhost", path, config).unwrap();
    assert_eq!(status, 200, "{head}");
    String::from_utf8_lossy(&body).into_owned()
}

#[test]
fn the_access_log_and_metrics_name_the_listener_and_the_tls_session() {
    let dir = TempDir::new("listeners-log");
    let (ca, cert, key) = localhost_cert(&dir);
    let backend = Backend::echo();
    let log = dir.path().join("access.log");
    let proxy = Proxy::start(&[
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0,tls",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--backend",
        &backend.addr().to_string(),
        "--admin",
        "127.0.0.1:0",
        "--access-log",
        log.to_str().unwrap(),
    ]);
    let [plain, tls] = proxy.addrs()[..] else {
        panic!("two listeners: {:?}", proxy.addrs())
    };
    assert_eq!(Client::connect(plain).get("/plain").status, 200);
    https_body(tls, "/secure", &ca.client_config(&[]));

    let mut lines = String::new();
    wait_until("both lines in the access log", || {
        lines = std::fs::read_to_string(&log).unwrap_or_default();
        lines.lines().count() >= 2
    });
    let line = |path: &str| {
        lines
            .lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("no line for {path}:\n{lines}"))
            .to_string()
    };
    assert!(
        line("/plain").ends_with(&format!(" listener={plain} tls=- sni=-")),
        "{lines}"
    );
    assert!(
        line("/secure").ends_with(&format!(" listener={tls} tls=TLSv1.3 sni=localhost")),
        "{lines}"
    );

    let admin = proxy.admin_addr();
    for (addr, protocol) in [(plain, "http"), (tls, "https")] {
        let labels = format!("{{listener=\"{addr}\",protocol=\"{protocol}\"}}");
        assert_eq!(
            metric(admin, &format!("corelb_listener_requests_total{labels}")),
            1.0
        );
        assert_eq!(
            metric(admin, &format!("corelb_listener_connections_total{labels}")),
            1.0
        );
    }
}

#[test]
fn each_listener_has_its_own_default_pool_and_routes() {
    let dir = TempDir::new("listeners-pools");
    let (ca, cert, key) = localhost_cert(&dir);
    let (main, api, special) = (
        Backend::echo_name("main"),
        Backend::echo_name("api"),
        Backend::echo_name("special"),
    );
    let toml = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"

[[listeners]]
address = "127.0.0.1:0"
tls = true
certificates = [{{ cert = "{cert}", key = "{key}" }}]
pool = "api"
routes = [{{ path_prefix = "/special/", pool = "special" }}]

[[pools]]
name = "default"
backends = [{{ addr = "{main}" }}]

[[pools]]
name = "api"
backends = [{{ addr = "{api}" }}]

[[pools]]
name = "special"
backends = [{{ addr = "{special}" }}]

[[routes]]
path_prefix = "/shared/"
pool = "special"
"#,
        main = main.addr(),
        api = api.addr(),
        special = special.addr(),
    );
    let config = dir.path().join("corelb.toml");
    std::fs::write(&config, toml).unwrap();
    let proxy = Proxy::start_with_file_listeners(config.to_str().unwrap(), &[]);
    let [plain, tls] = proxy.addrs()[..] else {
        panic!("two listeners: {:?}", proxy.addrs())
    };
    let config = ca.client_config(&[]);
    let over_plain = |path: &str| Client::connect(plain).get(path).body_str();

    // The plaintext listener: the shared routes, then the default pool.
    assert_eq!(over_plain("/"), "main");
    assert_eq!(over_plain("/special/x"), "main", "another listener's route");
    assert_eq!(over_plain("/shared/x"), "special");
    // The TLS listener: its own routes, the shared ones, then its pool.
    assert_eq!(https_body(tls, "/", &config), "api");
    assert_eq!(https_body(tls, "/special/x", &config), "special");
    assert_eq!(https_body(tls, "/shared/x", &config), "special");
}

#[test]
fn a_listener_naming_an_unknown_pool_is_refused_with_its_line() {
    let dir = TempDir::new("listeners-bad-pool");
    let backend = Backend::echo();
    let config = dir.path().join("corelb.toml");
    std::fs::write(
        &config,
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\npool = \"nope\"\n\n\
             [[pools]]\nname = \"default\"\nbackends = [{{ addr = \"{}\" }}]\n",
            backend.addr()
        ),
    )
    .unwrap();
    let (code, stderr) = Proxy::start_failing(&["--config", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(":3") && stderr.contains("listeners[0].pool") && stderr.contains("nope"),
        "{stderr}"
    );
}
