//! The access log: one line per answered request, nginx `combined` (plus
//! backend, times, listener and TLS session) or JSON, buffered per worker.
//!
//! A worker formats each line into its own buffer (reused, so no
//! allocation per request) and writes the buffer out once a second, when
//! it fills, and when the worker ends, so a graceful stop loses no line and
//! the request path makes no system call for the log. Each worker appends
//! to the file with its own descriptor (`O_APPEND`: whole writes do not
//! interleave); on SIGUSR1 every worker reopens it, for logrotate.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{AccessLogConfig, AccessLogFormat, AccessLogTarget};
use crate::transport::TlsSession;

/// The buffer is written out once it holds this much.
const FLUSH_AT: usize = 48 * 1024;

/// One request, as the access log writes it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub client: IpAddr,
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// `HTTP/1.x` minor version.
    pub minor_version: u8,
    pub status: u16,
    pub bytes_out: u64,
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
    pub backend: Option<SocketAddr>,
    pub upstream_time: Option<Duration>,
    pub total_time: Duration,
    /// The address of the listener the request came in on.
    pub listener: Option<SocketAddr>,
    /// `None`: plaintext.
    pub tls: Option<TlsSession<'a>>,
}

/// One worker's access log.
pub struct AccessLog {
    config: AccessLogConfig,
    file: RefCell<Option<File>>,
    buf: RefCell<Vec<u8>>,
    /// The control plane's reopen epoch this file was opened at.
    epoch: Cell<u64>,
    clock: RefCell<DateCache>,
    /// Every listener's address, in listener order.
    listeners: Box<[SocketAddr]>,
}

fn open_file(target: &AccessLogTarget) -> io::Result<Option<File>> {
    match target {
        AccessLogTarget::Stdout => Ok(None),
        AccessLogTarget::File(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Some),
    }
}

impl AccessLog {
    /// Open the log as `config` says; `epoch` is the reopen epoch now,
    /// `listeners` the listeners' addresses, in order.
    pub fn open(
        config: &AccessLogConfig,
        epoch: u64,
        listeners: &[SocketAddr],
    ) -> io::Result<Self> {
        Ok(Self {
            file: RefCell::new(open_file(&config.target)?),
            config: config.clone(),
            buf: RefCell::new(Vec::with_capacity(FLUSH_AT * 2)),
            epoch: Cell::new(epoch),
            clock: RefCell::new(DateCache::default()),
            listeners: listeners.into(),
        })
    }

    /// The address of listener `index`.
    pub fn listener(&self, index: u8) -> Option<SocketAddr> {
        self.listeners.get(usize::from(index)).copied()
    }

    /// Add a line for `entry`.
    pub fn record(&self, entry: &Entry<'_>) {
        let mut buf = self.buf.borrow_mut();
        let now = SystemTime::now();
        match self.config.format {
            AccessLogFormat::Combined => {
                let mut clock = self.clock.borrow_mut();
                write_combined(&mut buf, entry, clock.combined(now));
            }
            AccessLogFormat::Json => write_json(&mut buf, entry, now),
        }
        let full = buf.len() >= FLUSH_AT;
        drop(buf);
        if full {
            self.flush();
        }
    }

    /// Write out what is buffered.
    pub fn flush(&self) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return;
        }
        let result = match self.file.borrow_mut().as_mut() {
            Some(file) => file.write_all(&buf),
            None => io::stdout().lock().write_all(&buf),
        };
        if let Err(e) = result {
            tracing::error!("access log {}: cannot write: {e}", self.config.target);
        }
        buf.clear();
    }

    /// Flush, and reopen the file if the epoch moved past ours.
    pub fn flush_and_reopen(&self, epoch: u64) {
        self.flush();
        if epoch == self.epoch.get() {
            return;
        }
        self.epoch.set(epoch);
        match open_file(&self.config.target) {
            Ok(file) => *self.file.borrow_mut() = file,
            Err(e) => tracing::error!(
                "access log {}: cannot reopen ({e}); still writing to the old file",
                self.config.target
            ),
        }
    }
}

/// `bytes` in a quoted field, as nginx escapes it: `"`, `\` and bytes
/// outside printable ASCII as `\xHH`.
fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b);
        }
    }
}

/// `bytes` inside a JSON string.
fn push_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
    out.push(b'"');
}

fn or_dash(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() {
        b"-"
    } else {
        bytes
    }
}

/// `addr`, or `-` without one.
fn push_or_dash(out: &mut Vec<u8>, addr: Option<SocketAddr>) {
    match addr {
        Some(addr) => {
            let _ = write!(out, "{addr}");
        }
        None => out.push(b'-'),
    }
}

/// `addr` as a JSON string, or `null` without one.
fn push_json_addr(out: &mut Vec<u8>, addr: Option<SocketAddr>) {
    match addr {
        Some(addr) => {
            let _ = write!(out, "\"{addr}\"");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// nginx `combined`, then `backend=`, `upstream_time=` and `request_time=`
/// (seconds, as nginx writes `$upstream_response_time`), `listener=`, and
/// `tls=` and `sni=` (`-` for plaintext, or no SNI).
pub fn write_combined(out: &mut Vec<u8>, e: &Entry<'_>, date: &[u8]) {
    let _ = write!(out, "{} - - [", e.client);
    out.extend_from_slice(date);
    out.extend_from_slice(b"] \"");
    push_escaped(out, e.method);
    out.push(b' ');
    push_escaped(out, e.target);
    let _ = write!(
        out,
        " HTTP/1.{}\" {} {} \"",
        e.minor_version, e.status, e.bytes_out
    );
    push_escaped(out, or_dash(e.referer));
    out.extend_from_slice(b"\" \"");
    push_escaped(out, or_dash(e.user_agent));
    out.extend_from_slice(b"\" backend=");
    push_or_dash(out, e.backend);
    out.extend_from_slice(b" upstream_time=");
    match e.upstream_time {
        Some(t) => {
            let _ = write!(out, "{:.3}", t.as_secs_f64());
        }
        None => out.push(b'-'),
    }
    let _ = write!(
        out,
        " request_time={:.3} listener=",
        e.total_time.as_secs_f64()
    );
    match e.listener {
        Some(addr) => {
            let _ = write!(out, "{addr}");
        }
        None => out.push(b'-'),
    }
    let (version, sni) = e.tls.map_or(("-", None), |t| (t.version, t.sni));
    let _ = write!(out, " tls={version} sni=");
    // Escaped as the quoted fields are: a name a client sent.
    push_escaped(out, or_dash(sni.unwrap_or_default().as_bytes()));
    out.push(b'\n');
}

/// One JSON object per line.
pub fn write_json(out: &mut Vec<u8>, e: &Entry<'_>, now: SystemTime) {
    let unix = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let _ = write!(
        out,
        "{{\"time\":{}.{:03},\"client\":\"{}\",\"method\":",
        unix.as_secs(),
        unix.subsec_millis(),
        e.client
    );
    push_json_string(out, e.method);
    out.extend_from_slice(b",\"target\":");
    push_json_string(out, e.target);
    let _ = write!(
        out,
        ",\"protocol\":\"HTTP/1.{}\",\"status\":{},\"bytes\":{},\"referer\":",
        e.minor_version, e.status, e.bytes_out
    );
    push_json_string(out, e.referer);
    out.extend_from_slice(b",\"user_agent\":");
    push_json_string(out, e.user_agent);
    out.extend_from_slice(b",\"backend\":");
    push_json_addr(out, e.backend);
    out.extend_from_slice(b",\"upstream_time\":");
    match e.upstream_time {
        Some(t) => {
            let _ = write!(out, "{:.6}", t.as_secs_f64());
        }
        None => out.extend_from_slice(b"null"),
    }
    let _ = write!(out, ",\"request_time\":{:.6}", e.total_time.as_secs_f64());
    out.extend_from_slice(b",\"listener\":");
    push_json_addr(out, e.listener);
    out.extend_from_slice(b",\"tls\":");
    match e.tls {
        Some(t) => {
            let _ = write!(out, "\"{}\",\"sni\":", t.version);
            match t.sni {
                Some(name) => push_json_string(out, name.as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
        }
        None => out.extend_from_slice(b"null,\"sni\":null"),
    }
    out.extend_from_slice(b"}\n");
}

/// nginx's `$time_local` in UTC (`01/Dec/2026:15:56:11 +0000`), formatted
/// once per second.
#[derive(Default)]
struct DateCache {
    second: u64,
    text: [u8; 26],
    len: usize,
}

impl DateCache {
    fn combined(&mut self, now: SystemTime) -> &[u8] {
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.len == 0 {
            self.second = second;
            let mut cursor = io::Cursor::new(&mut self.text[..]);
            let _ = write_date(&mut cursor, second);
            self.len = cursor.position() as usize;
        }
        &self.text[..self.len]
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Year, month (1-12), day (1-31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn write_date(out: &mut impl Write, unix_seconds: u64) -> io::Result<()> {
    let days = (unix_seconds / 86_400) as i64;
    let rest = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    write!(
        out,
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            client: "10.0.0.7".parse().unwrap(),
            method: b"GET",
            target: b"/a \"b\"",
            minor_version: 1,
            status: 200,
            bytes_out: 512,
            referer: b"",
            user_agent: b"curl/8.0",
            backend: Some("127.0.0.1:9001".parse().unwrap()),
            upstream_time: Some(Duration::from_millis(3)),
            total_time: Duration::from_millis(4),
            listener: Some("0.0.0.0:443".parse().unwrap()),
            tls: Some(TlsSession {
                version: "TLSv1.3",
                sni: Some("a.example"),
            }),
        }
    }

    #[test]
    fn dates_are_nginx_time_local_in_utc() {
        let mut out = Vec::new();
        write_date(&mut out, 0).unwrap();
        assert_eq!(out, b"01/Jan/1970:00:00:00 +0000");
        out.clear();
        // 2026-12-01 15:56:11 UTC
        write_date(&mut out, 1_796_140_571).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "01/Dec/2026:15:56:11 +0000"
        );
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn combined_lines_escape_and_name_the_backend() {
        let mut out = Vec::new();
        write_combined(&mut out, &entry(), b"01/Dec/2026:15:56:11 +0000");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "10.0.0.7 - - [01/Dec/2026:15:56:11 +0000] \"GET /a \\x22b\\x22 HTTP/1.1\" 200 512 \"-\" \"curl/8.0\" backend=127.0.0.1:9001 upstream_time=0.003 request_time=0.004 listener=0.0.0.0:443 tls=TLSv1.3 sni=a.example\n"
        );
        let mut out = Vec::new();
        let plain = Entry {
            tls: None,
            listener: None,
            ..entry()
        };
        write_combined(&mut out, &plain, b"01/Dec/2026:15:56:11 +0000");
        assert!(out.ends_with(b" listener=- tls=- sni=-\n"));
    }

    #[test]
    fn json_lines_parse_as_json() {
        let mut out = Vec::new();
        let mut e = entry();
        e.backend = None;
        e.upstream_time = None;
        e.user_agent = b"bad\xffbyte";
        write_json(&mut out, &e, UNIX_EPOCH + Duration::from_millis(1500));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["target"], "/a \"b\"");
        assert_eq!(v["backend"], serde_json::Value::Null);
        assert_eq!(v["time"], 1.5);
        assert_eq!(v["user_agent"], "bad\u{ff}byte");
        assert!(out.ends_with(b"}\n"));
        assert_eq!(v["listener"], "0.0.0.0:443");
        assert_eq!(v["tls"], "TLSv1.3");
        assert_eq!(v["sni"], "a.example");
        out.clear();
        e.tls = None;
        write_json(&mut out, &e, UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["tls"], serde_json::Value::Null);
        assert_eq!(v["sni"], serde_json::Value::Null);
    }
}
