//! `declare_settings!`: from the one list of settings in `settings.rs`,
//! everything that used to repeat each of them.
//!
//! Each group of the list becomes a typed struct (`ProcessConfig`,
//! `Settings`, ...) with a `load` that reads every field through
//! `read.rs`, and a `changes` that names the flags of the fields that
//! differ. Across all groups it makes:
//!
//! - `SettingFlags`: the flags, each `Option<String>` (the text given),
//!   flattened into [`crate::config::cli::Cli`]; clap learns them from the specs;
//! - `FileConfig`: the file's keys (serde, unknown keys refused), each
//!   value kept with its position, plus the structured `pools` and
//!   `routes`;
//! - `specs()`: every setting's flag, key, default, range and whether a
//!   reload may change it (`restart` or `reload` on its group).
//!
//! An entry reads `FIELD: TYPE = KEY: TOML_TYPE => SPEC,`: the typed
//! field, the file key (the flag is the spec's), the TOML type of the
//! key's value (which must be the spec's, or it does not compile) and the
//! [`super::spec::Spec`] saying the rest.

macro_rules! declare_settings {
    (
        $(
            $(#[$group_meta:meta])*
            $class:ident struct $group:ident
            $( [ $( $(#[$nested_meta:meta])* $nested:ident : $nested_ty:ty ),* $(,)? ] )?
            {
                $(
                    $(#[$field_meta:meta])*
                    $field:ident : $ty:ty = $key:ident : $file_ty:ty => $spec:expr,
                )*
            }
        )*
    ) => {
        $(
            $(#[$group_meta])*
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub struct $group {
                $( $( $(#[$nested_meta])* pub $nested: $nested_ty, )* )?
                $( $(#[$field_meta])* pub $field: $ty, )*
            }

            impl $group {
                /// Read from the flags and the file, or the defaults.
                pub(super) fn load(
                    flags: &SettingFlags,
                    file: &FileConfig,
                    r: &mut Reader<'_>,
                ) -> Result<Self, ConfigError> {
                    $( $( let $nested = <$nested_ty>::load(flags, file, r)?; )* )?
                    $(
                        let $field = r.read(
                            stringify!($key),
                            declare_settings!(@spec $ty, $file_ty, $spec),
                            flags.$key.as_deref(),
                            file.$key.as_ref(),
                        )?;
                    )*
                    Ok(Self { $( $( $nested, )* )? $( $field, )* })
                }

                /// The flags of the settings that differ in `other`.
                pub fn changes(&self, other: &Self) -> Vec<&'static str> {
                    let mut changed = Vec::new();
                    $( $( changed.extend(self.$nested.changes(&other.$nested)); )* )?
                    $(
                        if self.$field != other.$field {
                            changed.push(declare_settings!(@spec $ty, $file_ty, $spec).flag);
                        }
                    )*
                    changed
                }
            }
        )*

        /// The settings' flags as given (text), by file key.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct SettingFlags {
            $( $( $(#[$field_meta])* pub $key: Option<String>, )* )*
        }

        impl clap::FromArgMatches for SettingFlags {
            fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
                Ok(Self { $( $(
                    $key: declare_settings!(@spec $ty, $file_ty, $spec).given(matches),
                )* )* })
            }

            fn update_from_arg_matches(
                &mut self,
                matches: &clap::ArgMatches,
            ) -> Result<(), clap::Error> {
                *self = Self::from_arg_matches(matches)?;
                Ok(())
            }
        }

        impl clap::Args for SettingFlags {
            fn augment_args(cmd: clap::Command) -> clap::Command {
                cmd $( $( .args(declare_settings!(@spec $ty, $file_ty, $spec).args()) )* )*
            }

            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                Self::augment_args(cmd)
            }
        }

        /// The config file as written; see `file.rs`.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct FileConfig {
            $( $( pub $key: Option<Spanned<$file_ty>>, )* )*
            /// The one listener's address (`[[listeners]]` says more).
            pub listen: Option<Spanned<String>>,
            #[serde(default)]
            pub listeners: Vec<FileListener>,
            #[serde(default)]
            pub pools: Vec<FilePool>,
            #[serde(default)]
            pub routes: Vec<FileRoute>,
        }

        /// Every setting, in declaration order.
        pub fn specs() -> Vec<SettingSpec> {
            vec![ $( $(
                declare_settings!(@spec $ty, $file_ty, $spec)
                    .describe(stringify!($key), declare_settings!(@reloadable $class)),
            )* )* ]
        }
    };
    // The spec, typed by the field and the file key it declares.
    (@spec $ty:ty, $file_ty:ty, $spec:expr) => {{
        let spec: Spec<$ty, $file_ty> = $spec;
        spec
    }};
    (@reloadable restart) => { false };
    (@reloadable reload) => { true };
}

pub(super) use declare_settings;
