//! Pools and routes: check the file's `[[pools]]` and `[[routes]]`, apply
//! the pool flags (`--backend`, `--algorithm`, `--hash-key`) by the rule in
//! the [module docs](super), and turn route pool names into indices.

use super::backend_tls::{file_pool_tls, flag_tls};
use super::discovery::{parse_backends_file, parse_dns_backend, parse_srv_name, DiscoverySource};
use super::file::{FilePool, FileRoute, Source};
use super::resilience::{parse_health_host, parse_health_path};
use super::retry_on::RetryOn;
use super::values::{check_weight, parse_path_prefix, parse_route_host, resolve_backend};
use super::{
    flag_error, parse_backend, quoted, BackendConfig, ConfigError, HashKey, PoolConfig,
    RouteConfig, DEFAULT_POOL,
};
use crate::balance::Algorithm;
use crate::config::cli::Cli;
use crate::state::origin::Origin;

/// Refuse a backend that is corelb's own listener: every request to it
/// would come back in, and go out again, until descriptors run out (a
/// loop through another proxy is caught at run time, by `Via`). A
/// wildcard listener is reached by any loopback address on its port.
pub(super) fn refuse_own_listener(
    listen: std::net::SocketAddr,
    pools: &[PoolConfig],
) -> Result<(), ConfigError> {
    let is_listener = |addr: std::net::SocketAddr| {
        addr == listen
            || (listen.port() != 0
                && addr.port() == listen.port()
                && listen.ip().is_unspecified()
                && (addr.ip().is_loopback() || addr.ip().is_unspecified()))
    };
    for pool in pools {
        if let Some(b) = pool.backends.iter().find(|b| is_listener(b.addr)) {
            return Err(ConfigError(format!(
                "pool {}: backend {} is corelb's own listen address ({listen}, --listen): \
                 requests would loop back into corelb",
                quoted(&pool.name),
                b.addr
            )));
        }
    }
    Ok(())
}

/// Check the file's pools and routes, apply the pool flags (see the module
/// docs), put the default pool first and point the routes at pool indices.
pub(super) fn pools_and_routes(
    cli: &Cli,
    src: Option<&Source<'_>>,
    file_pools: &[FilePool],
    file_routes: &[FileRoute],
) -> Result<(Vec<PoolConfig>, Vec<RouteConfig>), ConfigError> {
    let mut pools = match src {
        Some(src) => file_pools
            .iter()
            .enumerate()
            .map(|(i, p)| file_pool(src, i, p, &file_pools[..i]))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };

    let (flag_backends, flag_discovery) = pool_flags(cli)?;
    if !flag_backends.is_empty() || !flag_discovery.is_empty() {
        match pools.iter_mut().find(|p| p.name == DEFAULT_POOL) {
            Some(pool) => {
                pool.backends = flag_backends;
                pool.discovery = flag_discovery;
            }
            None => pools.push(PoolConfig {
                name: DEFAULT_POOL.into(),
                algorithm: Algorithm::RoundRobin,
                hash_key: HashKey::ClientIp,
                health_path: None,
                health_host: None,
                backends: flag_backends,
                discovery: flag_discovery,
                max_body_size: None,
                allow_upgrades: Vec::new(),
                retry_on: RetryOn::default(),
                tls: None,
                send_proxy_protocol: None,
            }),
        }
    }
    if pools.is_empty() {
        let hint = match src {
            Some(src) => format!("{}: no pools: add a [[pools]] table", src.name),
            None => "no backends".into(),
        };
        return Err(ConfigError(format!(
            "{hint}, or give at least one --backend HOST:PORT, --backend-dns NAME:PORT or \
             --backends-file FILE (or run `corelb demo`)"
        )));
    }
    // The default pool goes first; the others keep their order.
    if let Some(i) = pools.iter().position(|p| p.name == DEFAULT_POOL) {
        let pool = pools.remove(i);
        pools.insert(0, pool);
    }
    if let Some(text) = &cli.algorithm {
        pools[0].algorithm = text.parse().map_err(|e| flag_error("algorithm", text, e))?;
    }
    if let Some(text) = &cli.hash_key {
        pools[0].hash_key = text.parse().map_err(|e| flag_error("hash-key", text, e))?;
    }
    pools[0].tls = flag_tls(cli, pools[0].tls.take())?;
    if let Some(text) = &cli.retry_on {
        pools[0].retry_on =
            RetryOn::parse_list(text).map_err(|e| flag_error("retry-on", text, e))?;
    }
    let routes = match src {
        Some(src) => routes(src, "routes", file_routes, &pools, None)?,
        None => Vec::new(),
    };
    Ok((pools, routes))
}

/// The routes `file_routes` (the file's `[[routes]]`, or a listener's,
/// under `key`) of `listener` (`None`: every listener), pointed at pools.
pub(super) fn routes(
    src: &Source<'_>,
    key: &str,
    file_routes: &[FileRoute],
    pools: &[PoolConfig],
    listener: Option<u8>,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let routes = file_routes
        .iter()
        .enumerate()
        .map(|(i, r)| file_route(src, &format!("{key}[{i}]"), r, pools, listener))
        .collect::<Result<Vec<_>, _>>()?;
    // A route with no keys matches everything: any route after it is
    // dead, which is surely a mistake (say, a catch-all written first).
    if let Some(i) = routes[..routes.len().saturating_sub(1)]
        .iter()
        .position(|r| r.host.is_none() && r.path_prefix.is_none())
    {
        let dead = &file_routes[i + 1];
        return Err(src.problem(
            dead.pool.span(),
            &format!("{key}[{}]", i + 1),
            format!(
                "unreachable: {key}[{i}] has neither host nor path_prefix, \
                 so it matches every request; put catch-all routes last"
            ),
        ));
    }
    Ok(routes)
}

/// The index of the pool called by `name` (given under `key`).
pub(super) fn pool_named(
    src: &Source<'_>,
    key: &str,
    name: &toml::Spanned<String>,
    pools: &[PoolConfig],
) -> Result<usize, ConfigError> {
    let wanted = name.get_ref();
    pools.iter().position(|p| &p.name == wanted).ok_or_else(|| {
        let known: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        src.invalid(
            name.span(),
            key,
            quoted(wanted),
            format!("no pool by that name (pools: {})", known.join(", ")),
        )
    })
}

/// The default pool's backends and discovery sources from the flags
/// (`--backend`, `--backend-dns`, `--backends-file`).
fn pool_flags(cli: &Cli) -> Result<(Vec<BackendConfig>, Vec<DiscoverySource>), ConfigError> {
    let backends = cli
        .backends
        .iter()
        .map(|spec| parse_backend(spec).map_err(|e| flag_error("backend", spec, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut discovery = cli
        .backend_dns
        .iter()
        .map(|spec| parse_dns_backend(spec).map_err(|e| flag_error("backend-dns", spec, e)))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = &cli.backends_file {
        discovery
            .push(parse_backends_file(path).map_err(|e| flag_error("backends-file", path, e))?);
    }
    Ok((backends, discovery))
}

/// A pool's `dns`, `srv` and `backends_file`.
fn file_discovery(
    src: &Source<'_>,
    i: usize,
    pool: &FilePool,
) -> Result<Vec<DiscoverySource>, ConfigError> {
    let mut found = Vec::new();
    for (j, v) in pool.dns.iter().enumerate() {
        let text = v.get_ref();
        found.push(parse_dns_backend(text).map_err(|e| {
            src.invalid(v.span(), &format!("pools[{i}].dns[{j}]"), quoted(text), e)
        })?);
    }
    let keyed = [
        (pool.srv.as_ref(), "srv", parse_srv_name as fn(&str) -> _),
        (
            pool.backends_file.as_ref(),
            "backends_file",
            parse_backends_file,
        ),
    ];
    for (value, key, parse) in keyed {
        if let Some(v) = value {
            found.push(parse(v.get_ref()).map_err(|e| {
                src.invalid(
                    v.span(),
                    &format!("pools[{i}].{key}"),
                    quoted(v.get_ref()),
                    e,
                )
            })?);
        }
    }
    Ok(found)
}

/// Check `[[pools]]` number `i`; `earlier` are the pools before it.
fn file_pool(
    src: &Source<'_>,
    i: usize,
    pool: &FilePool,
    earlier: &[FilePool],
) -> Result<PoolConfig, ConfigError> {
    let key = |k: &str| format!("pools[{i}].{k}");
    let name = pool.name.get_ref();
    if name.trim().is_empty() {
        return Err(src.invalid(
            pool.name.span(),
            &key("name"),
            quoted(name),
            "must not be empty",
        ));
    }
    if let Some(j) = earlier.iter().position(|p| p.name.get_ref() == name) {
        return Err(src.invalid(
            pool.name.span(),
            &key("name"),
            quoted(name),
            format!("duplicate pool name (also pools[{j}].name)"),
        ));
    }
    let algorithm = match &pool.algorithm {
        Some(v) => v
            .get_ref()
            .parse()
            .map_err(|e| src.invalid(v.span(), &key("algorithm"), quoted(v.get_ref()), e))?,
        None => Algorithm::RoundRobin,
    };
    let hash_key = match &pool.hash_key {
        Some(v) => v
            .get_ref()
            .parse()
            .map_err(|e| src.invalid(v.span(), &key("hash_key"), quoted(v.get_ref()), e))?,
        None => HashKey::ClientIp,
    };
    let discovery = file_discovery(src, i, pool)?;
    let listed = pool
        .backends
        .as_ref()
        .map_or(&[][..], |b| b.get_ref().as_slice());
    if listed.is_empty() && discovery.is_empty() {
        let span = pool
            .backends
            .as_ref()
            .map_or(pool.name.span(), |b| b.span());
        return Err(src.problem(
            span,
            &key("backends"),
            "a pool needs at least one backend, or `dns`, `srv` or `backends_file` to find them",
        ));
    }
    let backends = listed
        .iter()
        .enumerate()
        .map(|(j, b)| {
            let key = |k: &str| format!("pools[{i}].backends[{j}].{k}");
            let addr_text = b.addr.get_ref().trim();
            let addr = resolve_backend(addr_text)
                .map_err(|e| src.invalid(b.addr.span(), &key("addr"), quoted(addr_text), e))?;
            let weight = match &b.weight {
                Some(w) => check_weight(*w.get_ref())
                    .map_err(|e| src.invalid(w.span(), &key("weight"), w.get_ref(), e))?,
                None => 1,
            };
            Ok(BackendConfig::new(
                addr,
                addr_text.to_string(),
                weight,
                Origin::Static,
            ))
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let health_path = pool
        .health_path
        .as_ref()
        .map(|v| {
            parse_health_path(v.get_ref())
                .map_err(|e| src.invalid(v.span(), &key("health_path"), quoted(v.get_ref()), e))
        })
        .transpose()?;
    let health_host = pool
        .health_host
        .as_ref()
        .map(|v| {
            parse_health_host(v.get_ref())
                .map_err(|e| src.invalid(v.span(), &key("health_host"), quoted(v.get_ref()), e))
        })
        .transpose()?;
    let max_body_size = match &pool.max_body_size {
        Some(v) if *v.get_ref() < 0 => {
            return Err(src.invalid(
                v.span(),
                &key("max_body_size"),
                v.get_ref(),
                "must be 0 (no limit) or more",
            ))
        }
        Some(v) => Some(*v.get_ref() as u64),
        None => None,
    };
    let allow_upgrades = pool
        .allow_upgrades
        .iter()
        .enumerate()
        .map(|(j, v)| {
            parse_upgrade_protocol(v.get_ref()).map_err(|e| {
                src.invalid(
                    v.span(),
                    &format!("pools[{i}].allow_upgrades[{j}]"),
                    quoted(v.get_ref()),
                    e,
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut retry_on = RetryOn::default();
    for (j, v) in pool.retry_on.iter().enumerate() {
        retry_on.insert(*v.get_ref()).map_err(|e| {
            src.invalid(
                v.span(),
                &format!("pools[{i}].retry_on[{j}]"),
                v.get_ref(),
                e,
            )
        })?;
    }
    let tls = file_pool_tls(src, i, pool)?;
    let send_proxy_protocol = pool
        .send_proxy_protocol
        .as_ref()
        .map(|v| {
            v.get_ref().parse().map_err(|e| {
                src.invalid(
                    v.span(),
                    &key("send_proxy_protocol"),
                    quoted(v.get_ref()),
                    e,
                )
            })
        })
        .transpose()?;
    Ok(PoolConfig {
        name: name.clone(),
        algorithm,
        hash_key,
        health_path,
        health_host,
        backends,
        discovery,
        max_body_size,
        allow_upgrades,
        retry_on,
        tls,
        send_proxy_protocol,
    })
}

/// One name of a pool's `allow_upgrades`: a protocol as `Upgrade` names
/// it (`h2c`, `foo/2`), lower-cased. CONNECT-style tunnels have no name
/// here: they are refused whatever the file says.
fn parse_upgrade_protocol(text: &str) -> Result<String, String> {
    use crate::http::upgrade::{Protocol, MAX_PROTOCOL_LEN};
    let name = text.trim();
    let token = |p: &str| !p.is_empty() && p.bytes().all(crate::http::syntax::is_token_byte);
    let well_formed = match name.split_once('/') {
        Some((proto, version)) => token(proto) && token(version),
        None => token(name),
    };
    if !well_formed || Protocol::new(name.as_bytes()).is_none() {
        return Err(format!(
            "expected a protocol name as `Upgrade` writes it (like h2c), at most {MAX_PROTOCOL_LEN} characters"
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// Check `[[routes]]` number `i` against the final pool list.
fn file_route(
    src: &Source<'_>,
    at: &str,
    route: &FileRoute,
    pools: &[PoolConfig],
    listener: Option<u8>,
) -> Result<RouteConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let host = route
        .host
        .as_ref()
        .map(|v| {
            parse_route_host(v.get_ref())
                .map_err(|e| src.invalid(v.span(), &key("host"), quoted(v.get_ref()), e))
        })
        .transpose()?;
    let path_prefix = route
        .path_prefix
        .as_ref()
        .map(|v| {
            parse_path_prefix(v.get_ref())
                .map_err(|e| src.invalid(v.span(), &key("path_prefix"), quoted(v.get_ref()), e))
        })
        .transpose()?;
    let pool = pool_named(src, &key("pool"), &route.pool, pools)?;
    Ok(RouteConfig {
        host,
        path_prefix,
        pool,
        listener,
    })
}
