//! A `[[listeners]]` entry's own routing: its `routes`, tried before the
//! `[[routes]]` every listener shares, and its `pool`, where its requests
//! go when no route matches (instead of the default pool).
//!
//! Both become ordinary routes tagged with the listener's place in the
//! list, so the snapshot keeps one route list: every listener's own
//! routes first, then the shared routes, then each listener's default
//! pool as a catch-all of that listener. A request sees, in order, its
//! listener's routes, the shared ones, its listener's pool, pool 0.
//! Being routes, they change on reload like any other.

use super::file::{FileListener, Source};
use super::pools::{pool_named, routes};
use super::{ConfigError, PoolConfig, RouteConfig};

/// Every route, the listeners' own around the shared ones (see the
/// module docs). `file_listeners`: the `[[listeners]]` in use (none when
/// `--listen` flags replace them).
pub(super) fn with_listener_routes(
    src: Option<&Source<'_>>,
    file_listeners: &[FileListener],
    shared: Vec<RouteConfig>,
    pools: &[PoolConfig],
) -> Result<Vec<RouteConfig>, ConfigError> {
    let Some(src) = src else {
        return Ok(shared);
    };
    let mut own = Vec::new();
    let mut defaults = Vec::new();
    // `listeners::MAX_LISTENERS` keeps the index in a `u8`; the count is
    // checked before this runs.
    for (i, listener) in file_listeners.iter().enumerate() {
        let index = Some(i as u8);
        let key = format!("listeners[{i}]");
        own.extend(routes(
            src,
            &format!("{key}.routes"),
            &listener.routes,
            pools,
            index,
        )?);
        if let Some(name) = &listener.pool {
            defaults.push(RouteConfig {
                host: None,
                path_prefix: None,
                pool: pool_named(src, &format!("{key}.pool"), name, pools)?,
                listener: index,
            });
        }
    }
    own.extend(shared);
    own.extend(defaults);
    Ok(own)
}
