//! Command-line flags.
//!
//! Every setting's flag (`--listen`, `--connect-timeout`, ...) is declared
//! with the setting in `config/settings.rs` and reaches [`Cli::settings`]
//! as the text given; each is optional so that a config file (`--config`)
//! can supply the value and a flag can still override it. The flags here
//! have no config-file key: the file itself, `--check`, the pool flags
//! (`--backend`, `--backend-dns`, `--backends-file`, `--algorithm`,
//! `--hash-key`, `--retry-on`, `--backend-tls*`) and `--takeover`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::SettingFlags;

/// corelb: a thread-per-core HTTP/1.1 load balancer.
#[derive(Debug, Parser, Default, Clone)]
#[command(name = "corelb", version, about, long_about = None)]
pub struct Cli {
    /// What to run; without one, corelb runs the load balancer.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML config file (see configs/corelb.toml); flags given as well
    /// override its values.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Validate the configuration (file and flags), print the result and
    /// exit: 0 if it is valid, 1 with the reason if not.
    #[arg(long, global = true)]
    pub check: bool,

    /// Backend server as HOST:PORT[,weight=N] (weight 1 to 10000, default
    /// 1); repeat for more. Host names are resolved at start. Forms the pool
    /// named `default`, replacing the backends of the config file's
    /// `default` pool, or adding that pool as the one serving requests no
    /// route matches.
    #[arg(long = "backend", value_name = "ADDR[,weight=N]", global = true)]
    pub backends: Vec<String>,

    /// Backends found in DNS, as NAME:PORT[,weight=N]: every A and AAAA
    /// record of NAME, re-resolved on its TTL (see --dns-min-ttl,
    /// --dns-max-ttl, --dns-hold, --resolver); repeat for more names. Into
    /// the default pool, like --backend.
    #[arg(
        long = "backend-dns",
        value_name = "NAME:PORT[,weight=N]",
        global = true
    )]
    pub backend_dns: Vec<String>,

    /// Backends listed in a JSON file, `[{"addr": "IP:PORT", "weight":
    /// N}, ...]`, watched for changes (a rename over it or a ConfigMap's
    /// symlink swap included); a file that does not parse changes nothing.
    /// Into the default pool, like --backend.
    #[arg(long = "backends-file", value_name = "FILE", global = true)]
    pub backends_file: Option<String>,

    /// Balancing algorithm of the default pool (the `--backend` pool, else
    /// the file's `default` pool, else its first) [default: round-robin].
    #[arg(long, value_name = "NAME", global = true)]
    pub algorithm: Option<String>,

    /// What the default pool hashes for consistent-hash: client-ip, path,
    /// header:NAME or cookie:NAME [default: client-ip].
    #[arg(long, value_name = "KEY", global = true)]
    pub hash_key: Option<String>,

    /// Statuses (5xx) on which the default pool sends an idempotent
    /// request, whose answer has not started, to another backend, e.g.
    /// `502,503,504` (within --retries and the retry budget) [default:
    /// none: answers are relayed as they are].
    #[arg(long, value_name = "STATUSES", global = true)]
    pub retry_on: Option<String>,

    /// Speak TLS to the default pool's backends (implied by the other
    /// --backend-tls-* flags).
    #[arg(long, global = true)]
    pub backend_tls: bool,

    /// PEM file of the CAs that sign the default pool's backend
    /// certificates [default: the system's roots].
    #[arg(long, value_name = "FILE", global = true)]
    pub backend_tls_ca: Option<String>,

    /// Server name sent to and verified on the default pool's backends
    /// [default: each backend's host as given; none for an IP address].
    #[arg(long, value_name = "NAME", global = true)]
    pub backend_tls_sni: Option<String>,

    /// Accept any certificate from the default pool's backends (labs
    /// only: anyone on the path can read and change the traffic).
    #[arg(long, global = true)]
    pub backend_tls_insecure_skip_verify: bool,

    /// Where clients connect, as
    /// ADDR[,tls[,no-h2]][,redirect-https][,h2c][,proxy-protocol];
    /// `h2c`: HTTP/2 with prior knowledge too; `no-h2`: a tls listener
    /// without HTTP/2 (offered by ALPN otherwise); `proxy-protocol`: peers
    /// in --proxy-protocol-from start with a PROXY header. Repeat for
    /// more listeners (e.g. `--listen 0.0.0.0:80,redirect-https --listen
    /// 0.0.0.0:443,tls`). Replaces the file's listeners [default:
    /// 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR[,tls]", global = true)]
    pub listen: Vec<String>,

    /// An address range (CIDR, or one address) of the L4 hops allowed to
    /// send a PROXY protocol header to the `proxy-protocol` listeners given
    /// by --listen; repeat for more. Peers in it must send one, others
    /// must not.
    #[arg(long, value_name = "CIDR", global = true)]
    pub proxy_protocol_from: Vec<String>,

    /// PEM certificate chain (leaf first) of the `tls` listeners given by
    /// --listen; repeat with --tls-key for more certificates, chosen by
    /// SNI (the first is the default).
    #[arg(long, value_name = "CHAIN.pem", global = true)]
    pub tls_cert: Vec<String>,

    /// PEM private key of the --tls-cert given in the same position.
    #[arg(long, value_name = "KEY.pem", global = true)]
    pub tls_key: Vec<String>,

    /// Join a listen address another corelb already serves, for an
    /// overlapping restart: new connections come here, the old process is
    /// then stopped with SIGTERM [default: a busy address is an error].
    #[arg(long, global = true)]
    pub takeover: bool,

    /// The settings' flags, by config-file key.
    #[command(flatten)]
    pub settings: SettingFlags,
}

/// Subcommands.
#[derive(Debug, Subcommand, Clone)]
pub enum Command {
    /// Start three demo backends on loopback and corelb in front of them.
    Demo,
}
