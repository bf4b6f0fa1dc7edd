//! A backends file: a JSON list of `{"addr": "IP:PORT", "weight": N}`,
//! read with [`read_source_file`] and watched with inotify on its
//! DIRECTORY (the `notify` crate), not on the file: an editor's or a
//! deploy tool's atomic rename replaces the file's inode, and a Kubernetes
//! ConfigMap volume swaps a `..data` symlink, so a watch on the file itself
//! would miss both. Any event in the directory means "read it again"; a
//! file that does not parse changes nothing (the last good set stays) and
//! is reported with file, line, column and reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::config::BackendConfig;
use crate::control::discovered::Resolution;
use crate::source_file::{read_source_file, MAX_SOURCE_FILE};
use crate::state::origin::Origin;

/// Read again this often even without an event (a directory created
/// after start, a missed event): cheap, and bounds any surprise.
pub const POLL: Duration = Duration::from_secs(5);

/// Events closer together than this are read once (a rename comes as
/// several events).
pub const SETTLE: Duration = Duration::from_millis(50);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    addr: String,
    weight: Option<i64>,
}

/// Read and check the file at `path`: the pool's new set, or why not.
pub fn read(path: &Path) -> Resolution {
    let parsed = read_source_file(path, MAX_SOURCE_FILE)
        .and_then(|text| parse(&path.display().to_string(), &text));
    match parsed {
        Ok(backends) => Resolution {
            backends: Some(backends),
            result: "ok",
            detail: String::new(),
            ttl: None,
        },
        Err(why) => Resolution {
            backends: None,
            result: "invalid",
            detail: format!("{why}; keeping the last good set"),
            ttl: None,
        },
    }
}

/// Parse the text of backends file `name`.
pub fn parse(name: &str, text: &str) -> Result<Vec<BackendConfig>, String> {
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| {
        // serde_json's message ends "at line L column C": say it first.
        let message = e.to_string();
        let reason = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(reason, _)| reason);
        format!("{name}:{}:{}: {reason}", e.line(), e.column())
    })?;
    let mut backends: Vec<BackendConfig> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let bad = |why: String| format!("{name}: entry {i} (`{}`): {why}", entry.addr);
        let addr: SocketAddr = entry
            .addr
            .trim()
            .parse()
            .map_err(|_| bad("addr must be IP:PORT".into()))?;
        let weight = match entry.weight {
            Some(w) => crate::config::check_weight(w).map_err(|e| bad(format!("weight {e}")))?,
            None => 1,
        };
        if backends.iter().any(|b| b.addr == addr) {
            return Err(bad("listed twice".into()));
        }
        backends.push(BackendConfig::new(
            addr,
            addr.to_string(),
            weight,
            Origin::File,
        ));
    }
    Ok(backends)
}

/// Watch the directory of `path`; every event wakes `wake`. The watcher
/// runs while the returned value lives. `Err`: no inotify (polling still
/// reads the file every [`POLL`]).
pub fn watch(
    path: &Path,
    wake: mpsc::UnboundedSender<()>,
) -> Result<notify::RecommendedWatcher, String> {
    let dir = directory_of(path);
    let mut watcher = notify::recommended_watcher(move |_event| {
        let _ = wake.send(());
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok(watcher)
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_parses_and_a_bad_one_says_where() {
        let ok = parse(
            "b.json",
            r#"[{"addr": "127.0.0.2:80", "weight": 3}, {"addr": "[::1]:81"}]"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[0].weight, ok[1].weight), (3, 1));
        let e = parse("b.json", "[\n {\"addr\": \"127.0.0.1:80\",}\n]").unwrap_err();
        assert!(e.starts_with("b.json:2:"), "{e}");
        let e = parse("b.json", r#"[{"addr": "web:80"}]"#).unwrap_err();
        assert!(e.contains("IP:PORT"), "{e}");
        let e = parse("b.json", r#"[{"addr": "127.0.0.1:80", "weight": 0}]"#).unwrap_err();
        assert!(e.contains("weight"), "{e}");
        let e = parse("b.json", r#"[{"address": "127.0.0.1:80"}]"#).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }
}
