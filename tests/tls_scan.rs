//! A TLS listener's configuration as a real scanner sees it: Debian's
//! `testssl.sh` (protocols, cipher categories, renegotiation, TLS
//! compression) and `openssl s_client` for 0-RTT. Only TLS 1.2 and 1.3,
//! only AEAD suites, no compression, no client-initiated renegotiation,
//! no early data.

mod common;

use std::process::{Command, Stdio};

use common::tls::{s_client_get, KeyKind, TestCa};
use common::{require_tool, Backend, Proxy, TempDir};

/// testssl.sh's checks here take about a minute (most of it waiting to
/// see a client-initiated renegotiation refused); the bound is generous.
const SCAN_TIMEOUT_SECS: u32 = 300;

/// Each check of testssl.sh's flat JSON report (`--jsonfile`: an array of
/// objects): (id, severity, finding).
fn findings(json: &serde_json::Value) -> Vec<(String, String, String)> {
    json.as_array()
        .into_iter()
        .flatten()
        .map(|check| {
            let text = |k: &str| check[k].as_str().unwrap_or_default().to_string();
            (text("id"), text("severity"), text("finding"))
        })
        .collect()
}

#[test]
fn testssl_finds_only_tls_1_2_and_1_3_aead_suites_no_compression_renegotiation_or_0_rtt() {
    require_tool("testssl");
    let dir = TempDir::new("tls-scan");
    let ca = TestCa::new(dir.path());
    let (cert, key) = ca.issue("localhost", &["localhost"], KeyKind::EcdsaP256, 30);
    let backend = Backend::echo();
    let proxy = Proxy::start(&[
        "--listen",
        "127.0.0.1:0,tls",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--backend",
        &backend.addr().to_string(),
        "--admin",
        "off",
    ]);
    let target = proxy.addr().to_string();
    let report = dir.path().join("testssl.json");
    // -p protocols, -s cipher categories, -R renegotiation, -C CRIME
    // (TLS compression).
    let out = Command::new("timeout")
        .arg(SCAN_TIMEOUT_SECS.to_string())
        .args(["testssl", "--quiet", "--warnings", "batch", "--color", "0"])
        .args(["--fast", "-p", "-s", "-R", "-C", "--jsonfile"])
        .arg(&report)
        .arg(&target)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run testssl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap_or_default())
            .unwrap_or_else(|e| panic!("no testssl report ({e}); its output:\n{stdout}"));
    let findings = findings(&json);
    let finding = |id: &str| -> (String, String) {
        findings
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, severity, text)| (severity.clone(), text.clone()))
            .unwrap_or_else(|| panic!("testssl reported no `{id}`:\n{stdout}"))
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(finding(old).1, "not offered", "{old}:\n{stdout}");
    }
    for current in ["TLS1_2", "TLS1_3"] {
        assert!(
            finding(current).1.starts_with("offered"),
            "{current}:\n{stdout}"
        );
    }
    // Every category but the AEAD one: NULL, anonymous, export, DES/RC4,
    // 3DES/IDEA and the CBC suites ("AVERAGE").
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(finding(weak).1, "not offered", "{weak}:\n{stdout}");
    }
    assert_eq!(finding("cipherlist_STRONG").1, "offered", "{stdout}");
    // Secure renegotiation (RFC 5746) only signals that a renegotiation
    // would be safe; a client asking for one is refused.
    assert_eq!(finding("secure_renego").0, "OK", "{stdout}");
    let (severity, text) = finding("secure_client_renego");
    assert!(
        severity == "OK" && text.contains("not vulnerable"),
        "client-initiated renegotiation: {severity} {text}\n{stdout}"
    );
    assert_eq!(finding("CRIME_TLS").1, "not vulnerable", "{stdout}");

    // 0-RTT: the tickets corelb issues allow no early data, so a client
    // resuming with one sends none.
    let session = dir.path().join("session");
    let s_client = |extra: &[&str]| s_client_get(proxy.addr(), &ca.cert(), extra);
    s_client(&["-sess_out", session.to_str().unwrap()]);
    let text = Command::new("openssl")
        .args(["sess_id", "-noout", "-text", "-in"])
        .arg(&session)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Max Early Data: 0"), "{text}");
    let early = dir.path().join("early");
    std::fs::write(&early, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let resumed = s_client(&[
        "-sess_in",
        session.to_str().unwrap(),
        "-early_data",
        early.to_str().unwrap(),
    ]);
    assert!(resumed.contains("Reused, TLSv1.3"), "{resumed}");
    assert!(!resumed.contains("Early data was accepted"), "{resumed}");
}
