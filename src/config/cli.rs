//! Command-line flags.
//!
//! Every setting's flag (`--listen`, `--connect-timeout`, ...) is declared
//! with the setting in `config/settings.rs` and reaches [`Cli::settings`]
//! as the text given; each is optional so that a config file (`--config`)
//! can supply the value and a flag can still override it. The flags here
//! have no config-file key: the file itself, `--check`, the pool flags
//! (`--backend`, `--algorithm`, `--hash-key`, `--retry-on`) and `--takeover`.

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

    /// Where clients connect, as ADDR[,tls][,redirect-https][,proxy-protocol];
    /// repeat for more listeners (e.g. `--listen 0.0.0.0:80,redirect-https
    /// --listen 0.0.0.0:443,tls`). Replaces the file's listeners [default:
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
