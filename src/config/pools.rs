//! Pools and routes: check the file's `[[pools]]` and `[[routes]]`, apply
//! the pool flags (`--backend`, `--algorithm`, `--hash-key`) by the rule in
//! the [module docs](super), and turn route pool names into indices.

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

    let flag_backends = cli
        .backends
        .iter()
        .map(|spec| parse_backend(spec).map_err(|e| flag_error("backend", spec, e)))
        .collect::<Result<Vec<_>, _>>()?;
    if !flag_backends.is_empty() {
        match pools.iter_mut().find(|p| p.name == DEFAULT_POOL) {
            Some(pool) => pool.backends = flag_backends,
            None => pools.push(PoolConfig {
                name: DEFAULT_POOL.into(),
                algorithm: Algorithm::RoundRobin,
                hash_key: HashKey::ClientIp,
                health_path: None,
                health_host: None,
                backends: flag_backends,
                max_body_size: None,
                allow_upgrades: Vec::new(),
                retry_on: RetryOn::default(),
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
            "{hint}, or give at least one --backend HOST:PORT (or run `corelb demo`)"
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
    if let Some(text) = &cli.retry_on {
        pools[0].retry_on =
            RetryOn::parse_list(text).map_err(|e| flag_error("retry-on", text, e))?;
    }
    let routes = match src {
        Some(src) => file_routes
            .iter()
            .enumerate()
            .map(|(i, r)| file_route(src, i, r, &pools))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if let Some(src) = src {
        // A route with no keys matches everything: any route after it is
        // dead, which is surely a mistake (say, a catch-all written first).
        if let Some(i) = routes[..routes.len().saturating_sub(1)]
            .iter()
            .position(|r| r.host.is_none() && r.path_prefix.is_none())
        {
            let dead = &file_routes[i + 1];
            return Err(src.problem(
                dead.pool.span(),
                &format!("routes[{}]", i + 1),
                format!(
                    "unreachable: routes[{i}] has neither host nor path_prefix, \
                     so it matches every request; put catch-all routes last"
                ),
            ));
        }
    }
    Ok((pools, routes))
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
    if pool.backends.get_ref().is_empty() {
        return Err(src.problem(
            pool.backends.span(),
            &key("backends"),
            "a pool needs at least one backend",
        ));
    }
    let backends = pool
        .backends
        .get_ref()
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
            Ok(BackendConfig {
                addr,
                name: addr_text.to_string(),
                weight,
                drained: false,
            })
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
        max_body_size,
        allow_upgrades,
        retry_on,
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
    i: usize,
    route: &FileRoute,
    pools: &[PoolConfig],
) -> Result<RouteConfig, ConfigError> {
    let key = |k: &str| format!("routes[{i}].{k}");
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
    let name = route.pool.get_ref();
    let pool = pools.iter().position(|p| &p.name == name).ok_or_else(|| {
        let known: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        src.invalid(
            route.pool.span(),
            &key("pool"),
            quoted(name),
            format!("no pool by that name (pools: {})", known.join(", ")),
        )
    })?;
    Ok(RouteConfig {
        host,
        path_prefix,
        pool,
    })
}
