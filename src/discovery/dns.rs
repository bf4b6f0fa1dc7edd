//! Asking DNS, with hickory's resolver: the A and AAAA records of a `dns`
//! name, or the SRV records of an `srv` name and their targets' addresses,
//! each turned into an [`Answer`] (`hold.rs` decides what it does).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolverConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};

use super::hold::Answer;
use crate::config::{BackendConfig, DiscoveryTiming};
use crate::state::origin::Origin;

/// How long one question may take, every server and retry included.
pub const QUESTION_TIMEOUT: Duration = Duration::from_secs(5);

/// A resolver asking `timing.resolvers`, or `/etc/resolv.conf`'s servers
/// when there are none. Nothing is cached: every question reaches a
/// server, so a changed record is seen when its TTL runs out.
pub fn resolver(timing: &DiscoveryTiming) -> Result<TokioResolver, String> {
    let provider = TokioConnectionProvider::default();
    let mut builder = if timing.resolvers.is_empty() {
        TokioResolver::builder(provider)
            .map_err(|e| format!("cannot read /etc/resolv.conf (give --resolver): {e}"))?
    } else {
        let servers: Vec<NameServerConfig> = timing
            .resolvers
            .iter()
            .flat_map(|&addr| {
                [Protocol::Udp, Protocol::Tcp].map(|p| NameServerConfig::new(addr, p))
            })
            .collect();
        let config =
            ResolverConfig::from_parts(None, Vec::new(), NameServerConfigGroup::from(servers));
        TokioResolver::builder_with_config(config, provider)
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.timeout = Duration::from_secs(2);
    options.attempts = 2;
    Ok(builder.build())
}

/// Every A and AAAA record of `name`, at `port`.
pub async fn lookup_name(resolver: &TokioResolver, name: &str, port: u16, weight: u32) -> Answer {
    match addresses(resolver, name).await {
        Ok((ips, _)) if ips.is_empty() => Answer::Gone { result: "empty" },
        Ok((ips, ttl)) => Answer::Found {
            backends: ips
                .into_iter()
                .map(|ip| backend(SocketAddr::new(ip, port), weight, Origin::Dns))
                .collect(),
            ttl,
        },
        Err(answer) => answer,
    }
}

/// Every SRV record of `name`: each target's addresses at the record's
/// port and weight (an SRV weight of 0 counts as 1; above 10000, 10000).
pub async fn lookup_srv(resolver: &TokioResolver, name: &str) -> Answer {
    let srv = match resolver.srv_lookup(absolute(name)).await {
        Ok(srv) => srv,
        Err(e) => return classify(&e),
    };
    let mut ttl = srv
        .as_lookup()
        .valid_until()
        .saturating_duration_since(Instant::now());
    let mut found: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    for record in srv.iter() {
        let target = record.target().to_utf8();
        let (ips, target_ttl) = match addresses(resolver, &target).await {
            Ok(found) => found,
            // A target that is gone is skipped; a failure keeps everything.
            Err(Answer::Gone { .. }) => continue,
            Err(failed) => return failed,
        };
        ttl = ttl.min(target_ttl);
        let weight = u32::from(record.weight()).clamp(1, 10_000);
        for ip in ips {
            found.insert(SocketAddr::new(ip, record.port()), weight);
        }
    }
    if found.is_empty() {
        return Answer::Gone { result: "empty" };
    }
    Answer::Found {
        backends: found
            .into_iter()
            .map(|(addr, weight)| backend(addr, weight, Origin::Srv))
            .collect(),
        ttl,
    }
}

/// The addresses of `name`, sorted, and how long they are valid.
async fn addresses(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Vec<std::net::IpAddr>, Duration), Answer> {
    let lookup = resolver
        .lookup_ip(absolute(name))
        .await
        .map_err(|e| classify(&e))?;
    let ttl = lookup
        .valid_until()
        .saturating_duration_since(Instant::now());
    let mut ips: Vec<_> = lookup.iter().collect();
    ips.sort();
    ips.dedup();
    Ok((ips, ttl))
}

/// Names are asked as written, never with search domains appended.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// NXDOMAIN and "no such records" say the name is gone; everything else
/// (SERVFAIL, REFUSED, a timeout, no server) says nothing about it.
fn classify(e: &ResolveError) -> Answer {
    if let Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) = e.proto().map(|p| p.kind())
    {
        match *response_code {
            ResponseCode::NXDomain => return Answer::Gone { result: "nxdomain" },
            ResponseCode::NoError => return Answer::Gone { result: "empty" },
            _ => {}
        }
    }
    Answer::Failed { why: e.to_string() }
}

fn backend(addr: SocketAddr, weight: u32, origin: Origin) -> BackendConfig {
    BackendConfig::new(addr, addr.to_string(), weight, origin)
}
