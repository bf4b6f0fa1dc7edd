//! Reading one declared setting: the file's value (checked even when a
//! flag overrides it), then the flag's, which wins, else the default.
//! Errors name the flag, or the file, line and key, and the value.

use std::any::Any;
use std::collections::HashMap;

use toml::Spanned;

use super::file::Source;
use super::spec::{Fallback, Spec};
use super::ConfigError;

/// A flag's value that is not valid.
pub(super) fn flag_error(flag: &str, value: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("invalid value `{value}` for --{flag}: {why}"))
}

/// How a file value is quoted in messages: strings as TOML writes them.
pub(super) trait FileValue {
    fn quoted(&self) -> String;
}

impl FileValue for String {
    fn quoted(&self) -> String {
        super::quoted(self)
    }
}

impl FileValue for i64 {
    fn quoted(&self) -> String {
        self.to_string()
    }
}

impl FileValue for Vec<String> {
    fn quoted(&self) -> String {
        let items: Vec<String> = self.iter().map(|s| s.quoted()).collect();
        format!("[{}]", items.join(", "))
    }
}

impl FileValue for bool {
    fn quoted(&self) -> String {
        self.to_string()
    }
}

/// The file of one load (for positions in errors), and the settings read
/// so far (for a default that is another setting's value). The values
/// themselves are handed to [`Reader::read`] by the declared loaders.
pub(super) struct Reader<'a> {
    src: Option<&'a Source<'a>>,
    read: HashMap<&'static str, Box<dyn Any>>,
}

impl<'a> Reader<'a> {
    pub fn new(src: Option<&'a Source<'a>>) -> Self {
        Reader {
            src,
            read: HashMap::new(),
        }
    }

    /// The setting with file key `key` declared by `spec`, given `flag` (the
    /// flag's text) and `file` (the file's value).
    pub fn read<T: Clone + 'static, F: FileValue + 'static>(
        &mut self,
        key: &'static str,
        spec: Spec<T, F>,
        flag: Option<&str>,
        file: Option<&Spanned<F>>,
    ) -> Result<T, ConfigError> {
        let mut value = None;
        if let (Some(src), Some(v)) = (self.src, file) {
            let checked = (spec.check)(v.get_ref())
                .map_err(|e| src.invalid(v.span(), key, v.get_ref().quoted(), e))?;
            value = Some(checked);
        }
        if let Some(text) = flag {
            value = Some((spec.parse)(text).map_err(|e| flag_error(spec.flag, text, e))?);
        }
        let value = match value {
            Some(value) => value,
            None => self.fallback(&spec)?,
        };
        self.read.insert(key, Box::new(value.clone()));
        Ok(value)
    }

    fn fallback<T: Clone + 'static, F>(&self, spec: &Spec<T, F>) -> Result<T, ConfigError> {
        // Only a mistake in the declarations reaches the errors below.
        let flag = spec.flag;
        match spec.fallback {
            Fallback::Text(text) => (spec.parse)(text)
                .map_err(|e| ConfigError(format!("built-in default `{text}` of --{flag}: {e}"))),
            Fallback::Computed(compute) => compute(),
            Fallback::SameAs(key) => self
                .read
                .get(key)
                .and_then(|v| v.downcast_ref::<T>())
                .cloned()
                .ok_or_else(|| {
                    ConfigError(format!("--{flag} defaults to {key}, not read before it"))
                }),
            Fallback::Missing => Err(ConfigError(format!("--{flag} has no default"))),
        }
    }
}
