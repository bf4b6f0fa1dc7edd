//! `corelb --config FILE --check` against the real binary: every shipped
//! example in `configs/` must pass (so they never rot), and broken files must
//! fail with a message naming the file, the key and the bad value.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

fn corelb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corelb"))
        .args(args)
        .output()
        .expect("run corelb")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config file in the temp directory, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(contents: &str) -> TempConfig {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "corelb-config-check-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write temp config");
        TempConfig(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Run `--check` on `contents` (plus `flags`); assert it fails and that
/// stderr names the file and contains every string in `expected`.
fn check_fails(contents: &str, flags: &[&str], expected: &[&str]) -> String {
    let file = TempConfig::new(contents);
    let mut args = vec!["--config", file.path(), "--check"];
    args.extend_from_slice(flags);
    let out = corelb(&args);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure for:\n{contents}\nstdout: {}",
        text(&out.stdout)
    );
    assert!(stderr.starts_with("corelb: "), "{stderr}");
    assert!(stderr.contains(file.path()), "file not named: {stderr}");
    for want in expected {
        assert!(stderr.contains(want), "missing `{want}` in: {stderr}");
    }
    stderr
}

const POOL: &str = "[[pools]]\nname = \"api\"\nbackends = [{ addr = \"127.0.0.1:9001\" }]\n";

#[test]
fn shipped_examples_pass_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/ exists") {
        let path = entry.expect("read configs/").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = corelb(&["--config", path.to_str().unwrap(), "--check"]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            stdout,
            text(&out.stderr)
        );
        assert!(
            stdout.starts_with("corelb: configuration OK (") && stdout.contains(" routes)"),
            "{stdout}"
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected corelb.toml, simple.toml and routes.toml"
    );
}

#[test]
fn check_reports_counts() {
    let file = TempConfig::new(&format!(
        "{POOL}[[pools]]\nname = \"b\"\nbackends = [{{ addr = \"127.0.0.1:1\" }}, {{ addr = \"127.0.0.1:2\" }}]\n[[routes]]\npath_prefix = \"/b/\"\npool = \"b\"\n"
    ));
    let out = corelb(&["--config", file.path(), "--check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "corelb: configuration OK (2 pools, 3 backends, 1 routes)"
    );
}

#[test]
fn bad_weight() {
    let e = check_fails(
        "[[pools]]\nname = \"api\"\nbackends = [{ addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\", weight = 0 }]\n",
        &[],
        &[
            "pools[0].backends[1].weight",
            "invalid value 0",
            "must be from 1 to 10000",
        ],
    );
    assert!(e.contains(".toml:3:"), "no line: {e}");
}

#[test]
fn unknown_key() {
    let e = check_fails(
        &format!("{POOL}algoritm = \"random\"\n"),
        &[],
        &["pools[0].algoritm", "unknown field `algoritm`"],
    );
    assert!(e.contains(".toml:4:1:"), "no line: {e}");
    check_fails(
        &format!("listen_addr = \"0.0.0.0:80\"\n{POOL}"),
        &[],
        &[".toml:1:1:", "listen_addr", "unknown field"],
    );
}

#[test]
fn unknown_pool_in_route() {
    check_fails(
        &format!("{POOL}[[routes]]\npath_prefix = \"/\"\npool = \"apj\"\n"),
        &[],
        &[
            ".toml:6:",
            "routes[0].pool",
            "\"apj\"",
            "no pool by that name",
        ],
    );
}

#[test]
fn duplicate_pool_name() {
    check_fails(
        &format!("{POOL}{POOL}"),
        &[],
        &[
            ".toml:5:",
            "pools[1].name",
            "\"api\"",
            "duplicate pool name",
        ],
    );
}

#[test]
fn pool_without_backends() {
    check_fails(
        "[[pools]]\nname = \"api\"\nbackends = []\n",
        &[],
        &["pools[0].backends", "at least one backend"],
    );
}

#[test]
fn bad_duration() {
    check_fails(
        &format!("upstream_timeout = \"soon\"\n{POOL}"),
        &[],
        &[".toml:1:20:", "upstream_timeout", "invalid value \"soon\""],
    );
    check_fails(
        &format!("client_idle_timeout = \"0s\"\n{POOL}"),
        &[],
        &["client_idle_timeout", "\"0s\"", "greater than zero"],
    );
}

#[test]
fn toml_syntax_error_has_line() {
    check_fails(
        "listen = \"127.0.0.1:8080\"\nthreads = 2\n[[pools]\nname = \"api\"\n",
        &[],
        &[".toml:3:"],
    );
    check_fails(
        "threads = \"two\"\n",
        &[],
        &[".toml:1:11:", "threads", "\"two\""],
    );
}

#[test]
fn unknown_algorithm() {
    check_fails(
        "[[pools]]\nname = \"api\"\nalgorithm = \"fastest\"\nbackends = [{ addr = \"127.0.0.1:9001\" }]\n",
        &[],
        &[
            ".toml:3:13:",
            "pools[0].algorithm",
            "\"fastest\"",
            "unknown algorithm",
        ],
    );
}

#[test]
fn bad_hash_key() {
    check_fails(
        "[[pools]]\nname = \"api\"\nhash_key = \"header:\"\nbackends = [{ addr = \"127.0.0.1:9001\" }]\n",
        &[],
        &["pools[0].hash_key", "\"header:\""],
    );
}

#[test]
fn unresolvable_backend() {
    check_fails(
        "[[pools]]\nname = \"api\"\nbackends = [{ addr = \"no-port\" }]\n",
        &[],
        &["pools[0].backends[0].addr", "\"no-port\"", "cannot resolve"],
    );
}

#[test]
fn missing_file() {
    let path = std::env::temp_dir().join(format!("corelb-absent-{}.toml", std::process::id()));
    let out = corelb(&["--config", path.to_str().unwrap(), "--check"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn flags_apply_with_a_file() {
    let file = TempConfig::new(&format!("threads = 2\n{POOL}"));
    // --backend adds the pool `default`; --threads overrides the file.
    let out = corelb(&[
        "--config",
        file.path(),
        "--check",
        "--threads",
        "1",
        "--backend",
        "127.0.0.1:9100",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "corelb: configuration OK (2 pools, 2 backends, 0 routes)"
    );
}

#[test]
fn bad_flag_value_is_one_line_naming_the_flag() {
    let out = corelb(&[
        "--backend",
        "127.0.0.1:9001",
        "--connect-timeout",
        "soon",
        "--check",
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("corelb: "), "{stderr}");
    assert!(stderr.contains("--connect-timeout"), "{stderr}");
    assert!(stderr.contains("`soon`"), "{stderr}");

    // The same with a config file: the flag, not the file, is blamed.
    let file = TempConfig::new(POOL);
    let out = corelb(&["--config", file.path(), "--check", "--threads", "0"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--threads"), "{stderr}");

    // Values clap itself refuses (not a number, an unknown flag) read the same.
    for args in [
        &["--threads", "abc"][..],
        &["--backlog=-3"],
        &["--no-such-flag"],
    ] {
        let out = corelb(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("corelb: "), "{stderr}");
        let flag = args[0].split('=').next().unwrap_or_default();
        assert!(stderr.contains(flag), "{stderr}");
    }
}

#[test]
fn help_documents_every_flag_with_its_default() {
    let out = corelb(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--config",
        "--check",
        "--listen",
        "--backend",
        "--threads",
        "--no-pin",
        "--pin",
        "--io-driver",
        "--algorithm",
        "--hash-key",
        "--backlog",
        "--max-connections",
        "--buffer-size",
        "--upstream-keepalive",
        "--client-header-timeout",
        "--client-idle-timeout",
        "--connect-timeout",
        "--upstream-timeout",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    for default in [
        "[default: 127.0.0.1:8080]",
        "[default: round-robin]",
        "[default: client-ip]",
        "[default: 4096]",
        "[default: 16384]",
        "[default: 10s]",
        "[default: 3s]",
    ] {
        assert!(help.contains(default), "{default} missing from --help");
    }
}

#[test]
fn demo_refuses_flags_it_would_ignore() {
    for (args, flag) in [
        (&["demo", "--check"][..], "--check"),
        (&["demo", "--backend", "127.0.0.1:9"][..], "--backend"),
    ] {
        let out = corelb(args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!("corelb: {flag} does not apply to the demo")),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
