//! Where a backend came from: the config (static), a DNS name's A/AAAA
//! records, an SRV record, or a backends file. Shown in `/status` and
//! `/metrics`; the control plane also uses it to know which backends a
//! discovery source may replace.

/// How a backend entered its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Origin {
    /// Listed in the config file or given by `--backend`.
    #[default]
    Static,
    /// An A or AAAA record of a `dns` name.
    Dns,
    /// An SRV record (its target's address, port and weight).
    Srv,
    /// An entry of a `backends_file`.
    File,
}

impl Origin {
    /// As `/status` and `/metrics` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Static => "static",
            Origin::Dns => "dns",
            Origin::Srv => "srv",
            Origin::File => "file",
        }
    }
}
