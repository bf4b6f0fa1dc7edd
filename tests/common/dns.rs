//! A real DNS server on loopback for the discovery tests: Debian's
//! `dnsmasq`, answering only from a hosts file (`--addn-hosts`, re-read on
//! SIGHUP) with a TTL of 1 s, authoritative for `lb.test` (a name not in
//! the file is NXDOMAIN), plus any `--srv-host` records given; and
//! backends on distinct loopback addresses for it to name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    free_port, require_tool, response, wait_until, Backend, BackendOptions, Reply, TempDir,
};

/// A dnsmasq process; killed on drop.
pub struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    hosts: PathBuf,
    _dir: TempDir,
}

impl Dnsmasq {
    /// Start dnsmasq answering with `hosts` (lines of `IP NAME`) and the
    /// `--srv-host` values `srv`.
    pub fn start(hosts: &str, srv: &[&str]) -> Dnsmasq {
        let exe = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file());
        if exe.is_none() {
            require_tool("dnsmasq");
        }
        let dir = TempDir::new("dns");
        let file = dir.path().join("hosts");
        std::fs::write(&file, hosts).unwrap();
        let port = free_port();
        let mut cmd = Command::new(exe.unwrap_or("dnsmasq"));
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--local-ttl=1",
            "--local=/lb.test/",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--pid-file=",
            "--user=root",
        ])
        .arg(format!("--addn-hosts={}", file.display()))
        .arg(format!("--port={port}"));
        for s in srv {
            cmd.arg(format!("--srv-host={s}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start dnsmasq");
        // Give it a moment to bind its socket; it exits at once if it cannot.
        thread::sleep(Duration::from_millis(200));
        if let Ok(Some(status)) = child.try_wait() {
            let mut why = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut why);
            }
            panic!("dnsmasq exited ({status}): {why}");
        }
        Dnsmasq {
            child: Some(child),
            port,
            hosts: file,
            _dir: dir,
        }
    }

    /// `--resolver` for corelb.
    pub fn resolver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replace the hosts file and make dnsmasq read it again (SIGHUP).
    pub fn set_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        if let Some(child) = &self.child {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
        }
    }

    /// Stop the server: questions go unanswered.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `n` backends on 127.0.0.2, 127.0.0.3, … all on one port (a DNS name
/// gives addresses, the port is the pool's), each answering its address.
pub fn loopback_backends(n: usize) -> (Vec<Backend>, u16) {
    let port = free_port();
    let backends = (0..n)
        .map(|i| {
            let addr: SocketAddr = format!("127.0.0.{}:{port}", i + 2).parse().unwrap();
            let name = addr.to_string();
            Backend::start_with(
                BackendOptions {
                    addr: Some(addr),
                    ..Default::default()
                },
                move |_| Reply::Raw(response(200, "OK", &[], name.as_bytes())),
            )
        })
        .collect();
    (backends, port)
}

/// Hosts-file lines naming `backends[i]` `name` for each `i` in `which`.
pub fn hosts(name: &str, backends: &[Backend], which: &[usize]) -> String {
    which
        .iter()
        .map(|&i| format!("{} {name}\n", backends[i].addr().ip()))
        .collect()
}

/// Wait until `backend` received more than `seen` requests; how long it took.
pub fn traffic_reaches(backend: &Backend, seen: usize) -> Duration {
    let start = Instant::now();
    wait_until(&format!("traffic at {}", backend.addr()), || {
        backend.request_count() > seen
    });
    start.elapsed()
}
