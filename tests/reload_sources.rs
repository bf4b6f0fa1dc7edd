//! What the config path may point at (issue 19 §6): only a regular file
//! of at most 16 MiB is read, at start and on reload; anything else is
//! refused with an error naming the file, and a reload that is refused or
//! slow never holds up a stop (SIGTERM drains at once).

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::*;

/// How long a stop may take here: far above a drain with nothing open.
const STOP_BOUND: Duration = Duration::from_secs(10);

const CONFIG: &str = "[[pools]]\nname = \"default\"\nbackends = [{ addr = \"127.0.0.1:9\" }]\n";

fn start(config: &Path) -> Proxy {
    let config = config.to_str().expect("temp paths are UTF-8");
    Proxy::start(&["--config", config, "--admin", "127.0.0.1:0"])
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {path:?} failed");
}

/// Point the config path at `target` instead (as a symlink).
fn relink(config: &Path, target: &Path) {
    std::fs::remove_file(config).unwrap();
    std::os::unix::fs::symlink(target, config).unwrap();
}

fn stops_promptly(proxy: &mut Proxy) {
    proxy.signal("TERM");
    let code = proxy.wait_exit(STOP_BOUND);
    assert_eq!(
        code,
        Some(0),
        "SIGTERM did not stop corelb within {STOP_BOUND:?}; log:\n{}",
        proxy.log()
    );
    proxy.stopped = true;
}

#[test]
fn a_config_path_pointing_at_dev_zero_is_refused_and_memory_stays_flat() {
    let dir = TempDir::new("reload-zero");
    let config = dir.path().join("corelb.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut proxy = start(&config);
    let before = rss_kib(proxy.pid());
    relink(&config, Path::new("/dev/zero"));
    proxy.signal("HUP");
    wait_until("the refused reload is logged", || {
        proxy
            .log()
            .contains("not a regular file (it is a character device)")
    });
    let line = proxy
        .log()
        .lines()
        .find(|l| l.contains("reload failed"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.contains(&config.display().to_string()), "{line}");
    thread::sleep(Duration::from_millis(500));
    let after = rss_kib(proxy.pid());
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    stops_promptly(&mut proxy);
}

#[test]
fn a_fifo_nobody_writes_does_not_hold_up_sigterm() {
    let dir = TempDir::new("reload-fifo");
    let config = dir.path().join("corelb.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut proxy = start(&config);
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    relink(&config, &fifo);
    proxy.signal("HUP");
    thread::sleep(Duration::from_millis(300));
    stops_promptly(&mut proxy);
    assert!(
        proxy.log().contains("it is a FIFO"),
        "the FIFO is not named as the reason:\n{}",
        proxy.log()
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_naming_the_limit() {
    let dir = TempDir::new("reload-big");
    let config = dir.path().join("corelb.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut proxy = start(&config);
    let admin = proxy.admin_addr();
    // A valid file (comments), just too large.
    let mut big = String::from(CONFIG);
    let line = format!("# {}\n", "x".repeat(1021));
    while big.len() <= 16 * 1024 * 1024 {
        big.push_str(&line);
    }
    std::fs::write(&config, &big).unwrap();
    let mut c = Client::connect(admin);
    c.send(format!(
        "POST /reload HTTP/1.1\r\nHost: {admin}\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    let r = c.read_response();
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(r.body_str().contains("limit of 16 MiB"), "{}", r.body_str());
    proxy.signal("HUP");
    wait_until("SIGHUP's refusal is logged", || {
        proxy.log().matches("limit of 16 MiB").count() >= 2
    });
    assert_eq!(admin::status(admin)["generation"], 1, "nothing changed");
    stops_promptly(&mut proxy);
}

#[test]
fn start_up_refuses_what_is_not_a_regular_file() {
    let dir = TempDir::new("start-fifo");
    let fifo = dir.path().join("corelb.toml");
    mkfifo(&fifo);
    let fifo_arg = fifo.to_str().unwrap();
    let (code, stderr) = Proxy::start_failing(&["--config", fifo_arg, "--check"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(fifo_arg) && stderr.contains("not a regular file"),
        "{stderr}"
    );
    let dir_arg = dir.path().to_str().unwrap();
    let (code, stderr) = Proxy::start_failing(&["--config", dir_arg, "--check"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("it is a directory"), "{stderr}");
}
