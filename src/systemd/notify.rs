//! `Type=notify`: tell systemd where corelb is in its life, by datagrams
//! to the Unix socket named in `NOTIFY_SOCKET` (`sd_notify(3)`; a name
//! starting with `@` is in the abstract namespace). Without the variable
//! every call does nothing.
//!
//! - `READY=1` once every worker serves (and after each reload);
//! - `RELOADING=1` with `MONOTONIC_USEC` when a reload (SIGHUP, so
//!   `systemctl reload`) starts: systemd then waits for the `READY=1`;
//! - `STOPPING=1` when the drain starts (SIGTERM).
//!
//! A send that fails is logged and otherwise ignored: systemd's
//! bookkeeping must never stop corelb from serving.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;

use tracing::warn;

/// The socket, once looked up (`None`: not run by systemd).
fn target() -> Option<&'static SocketAddr> {
    static TARGET: OnceLock<Option<SocketAddr>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let path = std::env::var_os("NOTIFY_SOCKET")?;
            let bytes = path.as_encoded_bytes();
            match bytes.strip_prefix(b"@") {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(name).ok()
                }
                None => SocketAddr::from_pathname(&path).ok(),
            }
        })
        .as_ref()
}

/// Send `state` (lines of `KEY=VALUE`) to systemd, if it listens.
fn send(state: &str) {
    let Some(target) = target() else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), target));
    if let Err(e) = sent {
        warn!("cannot notify systemd ({}): {e}", state.replace('\n', " "));
    }
}

/// Every worker serves (or a reload is over).
pub fn ready() {
    send("READY=1\nSTATUS=serving");
}

/// A reload starts now.
pub fn reloading() {
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
        monotonic_usec()
    ));
}

/// The drain starts now.
pub fn stopping() {
    send("STOPPING=1\nSTATUS=draining");
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd wants it with
/// `RELOADING=1`.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}
