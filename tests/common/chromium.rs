//! Headless Chromium, run once per call with a fresh profile: the tests
//! load pages in a real browser (the dashboard, a hostile page) and read
//! the DOM it dumps.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::TempDir;

/// Longest one Chromium run may take before it is killed.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

/// Run headless Chromium with a fresh profile and `args`; its stdout.
/// Killed (its whole process group) if it runs past [`CHROMIUM_LIMIT`].
pub fn chromium(args: &[String]) -> String {
    let profile = TempDir::new("chromium");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("cannot start chromium");
    let pid = child.id();
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));

    let deadline = Instant::now() + CHROMIUM_LIMIT;
    let exited: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            _ => break None,
        }
    };
    // A hung browser, and whatever helpers it left behind either way.
    kill_group(pid);
    let _ = child.kill();
    let _ = child.wait();

    let grace = Duration::from_secs(5);
    let out = stdout.recv_timeout(grace).unwrap_or_default();
    let err = stderr.recv_timeout(grace).unwrap_or_default();
    let err = String::from_utf8_lossy(&err);
    let Some(st) = exited else {
        panic!(
            "chromium {args:?} did not finish within {CHROMIUM_LIMIT:?} and was killed; stderr:\n{err}"
        );
    };
    assert!(
        st.success(),
        "chromium {args:?} failed ({st}); stderr:\n{err}"
    );
    drop(profile);
    String::from_utf8_lossy(&out).into_owned()
}

/// Read `r` to its end on a thread; the bytes arrive on the channel.
fn drain(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group we made
    // for chromium (process_group(0) above); no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Load `url`, let the page run for `virtual_ms` of virtual time (its
/// timers run, fetches in flight hold the clock), return the DOM then.
pub fn dump_dom(url: &str, virtual_ms: u32) -> String {
    chromium(&[
        format!("--virtual-time-budget={virtual_ms}"),
        "--dump-dom".to_string(),
        url.to_string(),
    ])
}
