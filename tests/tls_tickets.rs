//! TLS session-ticket keys from a file (`--tls-ticket-keys`): separate
//! corelb processes given the same file resume each other's sessions
//! (`openssl s_client -sess_out` on one, `-sess_in` on the other), with
//! different files they do not, and a reload reads the file again (a bad
//! one changes nothing).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use common::tls::{s_client_get, KeyKind, TestCa};
use common::{require_tool, wait_until, Backend, Proxy, TempDir};

/// A CA, a certificate for `localhost` and two key files, `one` and `two`.
struct Setup {
    dir: TempDir,
    ca: PathBuf,
    cert: String,
    key: String,
    backend: Backend,
}

impl Setup {
    fn new() -> Setup {
        require_tool("openssl");
        let dir = TempDir::new("tls-tickets");
        let ca = TestCa::new(dir.path());
        let (cert, key) = ca.issue("localhost", &["localhost"], KeyKind::EcdsaP256, 30);
        for name in ["one", "two"] {
            // HAProxy's layout: 80 random bytes, base64 on one line.
            let out = Command::new("sh")
                .args(["-c", "openssl rand 80 | base64 -w0"])
                .output()
                .unwrap();
            assert!(out.status.success());
            let line = String::from_utf8_lossy(&out.stdout);
            std::fs::write(dir.path().join(name), format!("# {name}\n{line}\n")).unwrap();
        }
        Setup {
            ca: ca.cert(),
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            backend: Backend::echo(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// corelb on a TLS listener with the ticket keys in `keys`, plus `extra`.
    fn proxy(&self, keys: &str, extra: &[&str]) -> Proxy {
        let keys = self.path(keys);
        let backend = self.backend.addr().to_string();
        let mut args = vec![
            "--listen",
            "127.0.0.1:0,tls",
            "--tls-cert",
            &self.cert,
            "--tls-key",
            &self.key,
            "--backend",
            &backend,
            "--tls-ticket-keys",
            &keys,
        ];
        args.extend_from_slice(extra);
        Proxy::start(&args)
    }

    /// One request through `openssl s_client` to `addr`, resuming the
    /// session in `sess_in` if given, saving it to `sess_out` if given:
    /// `New, TLSv1.3` or `Reused, TLSv1.3`, as s_client says.
    fn handshake(&self, addr: SocketAddr, sess_in: Option<&str>, sess_out: Option<&str>) -> String {
        let (sess_in, sess_out) = (
            sess_in.map(|s| self.path(s)),
            sess_out.map(|s| self.path(s)),
        );
        let mut args = Vec::new();
        if let Some(path) = &sess_in {
            args.extend(["-sess_in", path.as_str()]);
        }
        if let Some(path) = &sess_out {
            args.extend(["-sess_out", path.as_str()]);
        }
        let text = s_client_get(addr, &self.ca, &args);
        assert!(
            text.contains("HTTP/1.1 200"),
            "s_client got no 200:\n{text}"
        );
        text.lines()
            .find(|l| l.starts_with("New,") || l.starts_with("Reused,"))
            .map(|l| l.split(", Cipher").next().unwrap_or(l).to_string())
            .unwrap_or_else(|| format!("no session line in:\n{text}"))
    }
}

#[test]
fn processes_sharing_a_key_file_resume_each_others_sessions() {
    let setup = Setup::new();
    let first = setup.proxy("one", &[]);
    let same = setup.proxy("one", &[]);
    let other = setup.proxy("two", &[]);
    assert_eq!(
        setup.handshake(first.addr(), None, Some("session")),
        "New, TLSv1.3"
    );
    assert_eq!(
        setup.handshake(same.addr(), Some("session"), None),
        "Reused, TLSv1.3",
        "a process with the same key file resumes the session"
    );
    assert_eq!(
        setup.handshake(other.addr(), Some("session"), None),
        "New, TLSv1.3",
        "a process with another key file cannot"
    );
}

#[test]
fn a_reload_reads_the_key_file_again_and_a_bad_one_changes_nothing() {
    let setup = Setup::new();
    let config = setup.dir.path().join("corelb.toml");
    std::fs::write(&config, "threads = 1\n").unwrap();
    let issuer = setup.proxy("one", &[]);
    std::fs::copy(setup.path("two"), setup.path("live")).unwrap();
    let reloaded = setup.proxy("live", &["--config", &config.display().to_string()]);
    setup.handshake(issuer.addr(), None, Some("session"));
    assert_eq!(
        setup.handshake(reloaded.addr(), Some("session"), None),
        "New, TLSv1.3"
    );

    // The issuer's key, second: it decrypts, `two` still encrypts.
    let keys = |names: &[&str]| -> String {
        let text: Vec<String> = names
            .iter()
            .map(|n| std::fs::read_to_string(setup.path(n)).unwrap())
            .collect();
        text.concat()
    };
    std::fs::write(setup.path("live"), keys(&["two", "one"])).unwrap();
    reloaded.signal("HUP");
    wait_until("the reload", || reloaded.log().contains("reloaded"));
    assert_eq!(
        setup.handshake(reloaded.addr(), Some("session"), None),
        "Reused, TLSv1.3",
        "after the reload the file's second key opens the issuer's ticket"
    );

    // A bad line: the reload is refused naming the file and line, the
    // keys in use stay.
    std::fs::write(
        setup.path("live"),
        format!("{}not base64!\n", keys(&["two", "one"])),
    )
    .unwrap();
    reloaded.signal("HUP");
    let live = setup.path("live");
    let named = format!("{live}:5:");
    wait_until("the refused reload", || reloaded.log().contains(&named));
    assert_eq!(
        setup.handshake(reloaded.addr(), Some("session"), None),
        "Reused, TLSv1.3"
    );

    // At start, a bad file is refused the same way.
    let (code, stderr) = Proxy::start_failing(&[
        "--listen",
        "127.0.0.1:0,tls",
        "--tls-cert",
        &setup.cert,
        "--tls-key",
        &setup.key,
        "--backend",
        "127.0.0.1:1",
        "--tls-ticket-keys",
        &live,
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains(&named), "stderr: {stderr}");
}
