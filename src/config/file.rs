//! The config file as written: TOML deserialized by serde into loosely typed
//! structs that keep each value's position, so that [`super::Config::load`]
//! can check the values and point at the bad one. The top level,
//! `FileConfig`, has a key per setting declared in `settings.rs`; the
//! pools and routes it holds are declared here.
//!
//! Unknown keys are errors (`deny_unknown_fields`): a misspelt key silently
//! ignored is a setting silently not applied. Integers are read as `i64` so
//! that an out-of-range value gets the same "must be from A to B" message as
//! any other bad value, rather than serde's "expected u32".

use std::fmt::Display;
use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigError;

/// `[[pools]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePool {
    pub name: Spanned<String>,
    pub algorithm: Option<Spanned<String>>,
    pub hash_key: Option<Spanned<String>>,
    pub health_path: Option<Spanned<String>>,
    pub health_host: Option<Spanned<String>>,
    #[serde(default)]
    pub backends: Option<Spanned<Vec<FileBackend>>>,
    /// DNS names (`NAME:PORT`) whose A/AAAA records are backends too.
    #[serde(default)]
    pub dns: Vec<Spanned<String>>,
    /// An SRV name whose records are backends too.
    pub srv: Option<Spanned<String>>,
    /// A JSON file of backends, watched.
    pub backends_file: Option<Spanned<String>>,
    /// This pool's limit (0: none), instead of the top-level one.
    pub max_body_size: Option<Spanned<i64>>,
    /// Upgrade protocols forwarded besides `websocket` (e.g. `h2c`).
    #[serde(default)]
    pub allow_upgrades: Vec<Spanned<String>>,
    /// Statuses whose answers are retried on another backend.
    #[serde(default)]
    pub retry_on: Vec<Spanned<i64>>,
    /// TLS to the backends (`backend_tls.rs`).
    pub tls: Option<Spanned<bool>>,
    pub tls_ca: Option<Spanned<String>>,
    pub tls_sni: Option<Spanned<String>>,
    pub tls_insecure_skip_verify: Option<Spanned<bool>>,
    /// `"v1"` or `"v2"`: a PROXY protocol header on each new connection.
    pub send_proxy_protocol: Option<Spanned<String>>,
}

/// One entry of a pool's `backends`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBackend {
    pub addr: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
}

/// `[[routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoute {
    pub host: Option<Spanned<String>>,
    pub path_prefix: Option<Spanned<String>>,
    pub pool: Spanned<String>,
}

/// `[[listeners]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListener {
    pub address: Spanned<String>,
    pub tls: Option<Spanned<bool>>,
    #[serde(default)]
    pub certificates: Vec<FileCertificate>,
    pub require_sni: Option<Spanned<bool>>,
    pub redirect_https: Option<Spanned<bool>>,
    /// Where its requests go when no route matches (instead of the
    /// default pool).
    pub pool: Option<Spanned<String>>,
    /// Tried before the `[[routes]]` every listener shares.
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    /// `["http/1.1"]`, plus `"h2"` (TLS) or `"h2c"` (plaintext).
    pub protocols: Option<Spanned<Vec<String>>>,
    pub proxy_protocol: Option<Spanned<bool>>,
    #[serde(default)]
    pub proxy_protocol_from: Vec<Spanned<String>>,
}

/// One entry of a listener's `certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCertificate {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

/// The text of a config file and the name to call it by in messages.
pub(super) struct Source<'a> {
    /// The path as the user gave it.
    pub name: &'a str,
    /// The whole file.
    pub text: &'a str,
}

impl Source<'_> {
    /// `FILE:LINE:COL` of a byte offset (line and column from 1; the column
    /// counts characters).
    pub fn location(&self, offset: usize) -> String {
        let offset = floor_char_boundary(self.text, offset);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        format!("{}:{line}:{col}", self.name)
    }

    /// An invalid value at `span`, under `key`.
    pub fn invalid(
        &self,
        span: Range<usize>,
        key: &str,
        value: impl Display,
        why: impl Display,
    ) -> ConfigError {
        ConfigError(format!(
            "{}: {key}: invalid value {value}: {why}",
            self.location(span.start)
        ))
    }

    /// A problem with `key` as a whole (rather than with one value).
    pub fn problem(&self, span: Range<usize>, key: &str, why: impl Display) -> ConfigError {
        ConfigError(format!("{}: {key}: {why}", self.location(span.start)))
    }

    /// Parse and deserialize the file; syntax and type errors come back as
    /// `FILE:LINE:COL: KEY: MESSAGE (found TEXT)`.
    /// (`T` is `settings::FileConfig`; generic so this file, which that
    /// type's pools and routes come from, need not import it back.)
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let doc = DeTable::parse(self.text).map_err(|e| self.toml_error(&e, None))?;
        T::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| self.toml_error(&e, Some(doc.get_ref())))
    }

    fn toml_error(&self, error: &toml::de::Error, doc: Option<&DeTable<'_>>) -> ConfigError {
        // Integers are read as i64 (see the module docs); say so plainly.
        let message = error
            .message()
            .trim_end()
            .replace("expected i64", "expected a whole number");
        let message = message.as_str();
        let Some(span) = error.span() else {
            return ConfigError(format!("{}: {message}", self.name));
        };
        let mut out = self.location(span.start);
        if let Some(doc) = doc {
            let mut path = String::new();
            if table_path(doc, span.start, &mut path) {
                out.push_str(": ");
                out.push_str(&path);
            }
        }
        out.push_str(": ");
        out.push_str(message);
        // Quote the offending text when it is short and not already quoted
        // by the message (serde's "invalid type" messages quote the value).
        let start = floor_char_boundary(self.text, span.start);
        let end = floor_char_boundary(self.text, span.end.max(span.start));
        let found = self.text[start..end].trim();
        if !found.is_empty()
            && !found.contains('\n')
            && found.len() <= 60
            && !message.contains(found)
        {
            out.push_str(&format!(" (found `{found}`)"));
        }
        ConfigError(out)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Append to `path` the dotted key (`pools[1].backends[0].weight`) of the
/// deepest key or value in `table` containing byte `offset`; false if none.
fn table_path(table: &DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let mark = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if key.span().contains(&offset) || value_path(value, offset, path) {
            return true;
        }
        path.truncate(mark);
    }
    false
}

/// Like [`table_path`] for a value: true if `offset` is inside it (after
/// appending the path within it, if any).
fn value_path(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut String) -> bool {
    // Descend first: the span of an `[[array]]` table does not cover its
    // keys, so containment alone cannot prune the search.
    match value.get_ref() {
        DeValue::Table(table) if table_path(table, offset, path) => return true,
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let mark = path.len();
                path.push_str(&format!("[{i}]"));
                if value_path(item, offset, path) {
                    return true;
                }
                path.truncate(mark);
            }
        }
        _ => {}
    }
    value.span().contains(&offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Source {
            name: "t.toml",
            text,
        }
        .parse::<super::super::settings::FileConfig>()
        .unwrap_err()
        .0
    }

    #[test]
    fn locations_count_lines_and_chars() {
        let s = Source {
            name: "f",
            text: "a\nbé c\n",
        };
        assert_eq!(s.location(0), "f:1:1");
        assert_eq!(s.location(2), "f:2:1");
        assert_eq!(s.location(5), "f:2:3");
        assert_eq!(s.location(99), "f:3:1");
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("threads = 2\nlisten = \n");
        assert!(e.starts_with("t.toml:2:"), "{e}");
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let e = err("threads = 2\ncolour = 1\n");
        assert!(
            e.starts_with("t.toml:2:1: colour: unknown field `colour`"),
            "{e}"
        );
        let e = err("[[pools]]\nname = \"a\"\nbackends = [{ addr = \"x:1\", wieght = 2 }]\n");
        assert!(e.contains("t.toml:3:"), "{e}");
        assert!(e.contains("pools[0].backends[0].wieght"), "{e}");
    }

    #[test]
    fn type_error_names_key_and_value() {
        let e = err("[[pools]]\nname = \"a\"\nbackends = []\n[[pools]]\nname = \"b\"\nbackends = [{ addr = \"x:1\", weight = \"3\" }]\n");
        assert!(e.contains("t.toml:6:"), "{e}");
        assert!(e.contains("pools[1].backends[0].weight"), "{e}");
        assert!(e.contains("\"3\""), "{e}");
        let e = err("threads = \"many\"\n");
        assert!(e.starts_with("t.toml:1:11: threads: "), "{e}");
        assert!(e.contains("many"), "{e}");
    }

    #[test]
    fn missing_key_names_the_table() {
        let e = err("[[routes]]\nhost = \"a\"\n");
        assert!(e.contains("missing field `pool`"), "{e}");
        assert!(e.contains("routes[0]"), "{e}");
    }
}
