//! The vocabulary of a setting's declaration in `settings.rs`: the kind
//! of value it takes, its flag, default, range and help, as one [`Spec`].
//!
//! A spec is all the flag parser, the file reader and `--help` need to
//! know about a setting, so none of them repeats it: [`Spec::args`] makes
//! its clap arguments (help text ending with the default), [`Spec::given`]
//! reads them back, and `read.rs` checks the file's value and the flag's
//! with the same parser and falls back to the same default.

use std::ops::RangeInclusive;

use clap::{Arg, ArgAction, ArgMatches};

use super::ConfigError;

/// How a setting is written on the command line.
pub(super) enum Flag {
    /// `--FLAG VALUE`. A number is checked by clap as a whole number first,
    /// as clap-typed flags always were.
    Value {
        value_name: &'static str,
        number: bool,
    },
    /// `--FLAG VALUE`, repeatable; the values given reach the parser
    /// joined by commas, as if written `--FLAG A,B`.
    List { value_name: &'static str },
    /// `--FLAG` turns it on and `--OFF` off; either may not exist. The
    /// last one given wins.
    Switch {
        on_help: Option<&'static str>,
        off: Option<(&'static str, &'static str)>,
    },
}

/// What a setting is when neither a flag nor the file gives it.
pub(super) enum Fallback<T> {
    /// This text, read as a flag's value would be.
    Text(&'static str),
    /// Worked out at load time (from the machine, the environment).
    Computed(fn() -> Result<T, ConfigError>),
    /// The value of the setting with this file key, declared before it.
    SameAs(&'static str),
    /// Not declared: an error at load time, which every test that loads
    /// a configuration would catch.
    Missing,
}

/// Reads an `I` as a `T`, or says in a few words why not.
pub(super) type Parser<I, T> = Box<dyn Fn(&I) -> Result<T, String>>;

/// One setting's declaration, but for its name and file key (which the
/// declaration writes as identifiers, for the structs they name).
pub(super) struct Spec<T, F> {
    /// The flag, without `--`.
    pub(super) flag: &'static str,
    pub(super) kind: Flag,
    pub(super) help: &'static str,
    /// The default as `--help` quotes it.
    pub(super) shown: &'static str,
    pub(super) range: Option<RangeInclusive<i64>>,
    /// A flag's text to the value.
    pub(super) parse: Parser<str, T>,
    /// The file's value (of the TOML type `F`) to the value.
    pub(super) check: Parser<F, T>,
    pub(super) fallback: Fallback<T>,
}

/// A setting as `specs()` lists it: everything about it but its parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingSpec {
    /// Without `--`. A switch's name: `--FLAG` itself exists only if the
    /// switch declares `.on`, `--no-FLAG` if it declares `.off`.
    pub flag: &'static str,
    /// The config-file key.
    pub key: &'static str,
    /// As `--help` quotes it.
    pub default: &'static str,
    /// For whole numbers.
    pub range: Option<RangeInclusive<i64>>,
    /// Whether a reload applies a change of it (else it takes a restart).
    pub reloadable: bool,
    /// The help text, without the default.
    pub help: &'static str,
}

/// A value written as text, read by `parse` from a flag and the file alike.
pub(super) fn text<T: 'static>(
    flag: &'static str,
    value_name: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Spec<T, String> {
    Spec {
        flag,
        kind: Flag::Value {
            value_name,
            number: false,
        },
        help: "",
        shown: "",
        range: None,
        parse: Box::new(parse),
        check: Box::new(move |v: &String| parse(v)),
        fallback: Fallback::Missing,
    }
}

/// A whole number in `range`, written as a TOML integer in the file.
pub(super) fn number<T: TryFrom<i64> + 'static>(
    flag: &'static str,
    value_name: &'static str,
    range: RangeInclusive<i64>,
) -> Spec<T, i64> {
    let why = format!("must be from {} to {}", range.start(), range.end());
    let (allowed, not_a_number) = (range.clone(), why.clone());
    let check = move |n: &i64| {
        Some(*n)
            .filter(|n| allowed.contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| why.clone())
    };
    let from_flag = check.clone();
    Spec {
        flag,
        kind: Flag::Value {
            value_name,
            number: true,
        },
        help: "",
        shown: "",
        range: Some(range),
        // Clap let only digits through: what i64 cannot hold is out of range.
        parse: Box::new(move |s| {
            let n = s.trim().parse::<i64>().map_err(|_| not_a_number.clone())?;
            from_flag(&n)
        }),
        check: Box::new(check),
        fallback: Fallback::Missing,
    }
}

/// A list of values, each read by `parse`: on the command line the flag
/// repeated or given a comma-separated list (`--FLAG A --FLAG B`, `--FLAG
/// A,B`), in the file an array of strings. Empty unless given; the
/// file's list is replaced, not extended, by the flags.
pub(super) fn list<T: 'static>(
    flag: &'static str,
    value_name: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Spec<Vec<T>, Vec<String>> {
    fn empty<T>() -> Result<Vec<T>, ConfigError> {
        Ok(Vec::new())
    }
    let each = move |item: &str| parse(item.trim()).map_err(|e| format!("`{item}`: {e}"));
    Spec {
        flag,
        kind: Flag::List { value_name },
        help: "",
        shown: "",
        range: None,
        parse: Box::new(move |s| s.split(',').map(each).collect()),
        check: Box::new(move |v: &Vec<String>| v.iter().map(|item| each(item)).collect()),
        fallback: Fallback::Computed(empty::<T>),
    }
}

/// On or off: `true`/`false` in the file, flags `--FLAG` (see
/// [`Spec::on`]) and `--OFF` (see [`Spec::off`]).
pub(super) fn switch(flag: &'static str, default: bool) -> Spec<bool, bool> {
    Spec {
        flag,
        kind: Flag::Switch {
            on_help: None,
            off: None,
        },
        help: "",
        shown: "",
        range: None,
        parse: Box::new(|s| Ok(s == "true")),
        check: Box::new(|b| Ok(*b)),
        fallback: Fallback::Text(if default { "true" } else { "false" }),
    }
}

impl<T: 'static, F: 'static> Spec<T, F> {
    /// What `--help` says, before the default.
    pub(super) fn help(mut self, help: &'static str) -> Self {
        self.help = help;
        self
    }

    /// The default, written as a flag's value would be (and quoted so).
    pub(super) fn default(self, text: &'static str) -> Self {
        self.falls_back(Fallback::Text(text)).shown(text)
    }

    /// A default worked out at load time, described as `shown`.
    pub(super) fn default_computed(
        self,
        shown: &'static str,
        compute: fn() -> Result<T, ConfigError>,
    ) -> Self {
        self.or_computed(compute).shown(shown)
    }

    /// The value of the setting with file key `key` (declared earlier).
    pub(super) fn default_same_as(self, shown: &'static str, key: &'static str) -> Self {
        self.falls_back(Fallback::SameAs(key)).shown(shown)
    }

    /// Worked out at load time, keeping how `--help` quotes the default.
    pub(super) fn or_computed(self, compute: fn() -> Result<T, ConfigError>) -> Self {
        self.falls_back(Fallback::Computed(compute))
    }

    fn falls_back(mut self, fallback: Fallback<T>) -> Self {
        self.fallback = fallback;
        self
    }

    /// How `--help` describes a switch's default.
    pub(super) fn shown(mut self, shown: &'static str) -> Self {
        self.shown = shown;
        self
    }

    /// Unset unless given: the value becomes an `Option`.
    pub(super) fn optional(self, shown: &'static str) -> Spec<Option<T>, F> {
        fn none<T>() -> Result<Option<T>, ConfigError> {
            Ok(None)
        }
        let (parse, check) = (self.parse, self.check);
        Spec {
            flag: self.flag,
            kind: self.kind,
            help: self.help,
            shown,
            range: self.range,
            parse: Box::new(move |s| parse(s).map(Some)),
            check: Box::new(move |v| check(v).map(Some)),
            fallback: Fallback::Computed(none::<T>),
        }
    }

    /// The switch has `--FLAG`, which turns it on.
    pub(super) fn on(mut self, help: &'static str) -> Self {
        if let Flag::Switch { on_help, .. } = &mut self.kind {
            *on_help = Some(help);
        }
        self
    }

    /// The switch has `--OFF` (e.g. `no-pin`), which turns it off.
    pub(super) fn off(mut self, flag: &'static str, help: &'static str) -> Self {
        if let Flag::Switch { off, .. } = &mut self.kind {
            *off = Some((flag, help));
        }
        self
    }

    /// Its clap arguments, `global` so they also follow a subcommand.
    pub(super) fn args(&self) -> Vec<Arg> {
        let with_default = |help: &str, quote: bool| match self.shown {
            shown if quote && !shown.is_empty() => format!("{help} [default: {shown}]"),
            _ => help.to_string(),
        };
        match &self.kind {
            Flag::Value { value_name, number } => {
                let arg = Arg::new(self.flag)
                    .long(self.flag)
                    .value_name(*value_name)
                    .global(true)
                    .action(ArgAction::Set)
                    .help(with_default(self.help, true));
                vec![if *number {
                    arg.value_parser(clap::value_parser!(u64))
                } else {
                    arg.value_parser(clap::value_parser!(String))
                }]
            }
            Flag::List { value_name } => vec![Arg::new(self.flag)
                .long(self.flag)
                .value_name(*value_name)
                .global(true)
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(String))
                .help(with_default(self.help, true))],
            Flag::Switch { on_help, off } => {
                // The flag that changes the default is the one to quote it.
                let on_by_default = matches!(self.fallback, Fallback::Text("true"));
                let flag = |id: &'static str, help: &str, quote: bool| {
                    Arg::new(id)
                        .long(id)
                        .global(true)
                        .action(ArgAction::SetTrue)
                        .help(with_default(help, quote))
                };
                let mut args = Vec::new();
                if let Some(help) = on_help {
                    let mut arg = flag(self.flag, help, !on_by_default);
                    if let Some((off_flag, _)) = off {
                        arg = arg.overrides_with(*off_flag);
                    }
                    args.push(arg);
                }
                if let Some((off_flag, help)) = off {
                    let mut arg = flag(off_flag, help, on_by_default);
                    if on_help.is_some() {
                        arg = arg.overrides_with(self.flag);
                    }
                    args.push(arg);
                }
                args
            }
        }
    }

    /// The value its flags gave, as text for [`Spec::parse`]; `None` if
    /// none was given.
    pub(super) fn given(&self, matches: &ArgMatches) -> Option<String> {
        let set = |id: &str| matches!(matches.try_get_one::<bool>(id), Ok(Some(true)));
        match &self.kind {
            Flag::Value { number: true, .. } => matches
                .try_get_one::<u64>(self.flag)
                .ok()
                .flatten()
                .map(u64::to_string),
            Flag::Value { number: false, .. } => matches
                .try_get_one::<String>(self.flag)
                .ok()
                .flatten()
                .cloned(),
            Flag::List { .. } => matches
                .try_get_many::<String>(self.flag)
                .ok()
                .flatten()
                .map(|values| values.cloned().collect::<Vec<_>>().join(",")),
            Flag::Switch { on_help, off } => {
                if on_help.is_some() && set(self.flag) {
                    Some("true".into())
                } else if off.is_some_and(|(off_flag, _)| set(off_flag)) {
                    Some("false".into())
                } else {
                    None
                }
            }
        }
    }

    /// The listing of this setting under file key `key`.
    pub(super) fn describe(&self, key: &'static str, reloadable: bool) -> SettingSpec {
        SettingSpec {
            flag: self.flag,
            key,
            default: self.shown,
            range: self.range.clone(),
            reloadable,
            help: self.help,
        }
    }
}
