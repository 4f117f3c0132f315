//! Hydra-style configuration: experiment files with a defaults list of group
//! options, command-line overrides, `${…}` interpolation and a typed schema.

mod auto_size;
mod compose;
mod interpolate;
pub mod overrides;
mod provider;
mod schema;
mod suggest;
pub mod sweep_value;
mod value_text;

#[cfg(test)]
mod proptests;

use std::path::PathBuf;

pub use auto_size::AutoSize;
pub use compose::{compose, Composed};
pub use overrides::{Override, OverrideKind, OverrideValue};
pub use schema::*;
pub use sweep_value::SweepSpec;

/// Everything that can be wrong with a configuration, each naming the file,
/// position, key or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("experiment file {path} not found{}", from_note(.included_from))]
    MissingFile {
        path: PathBuf,
        included_from: Option<PathBuf>,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: `defaults` must be a list of strings like \"data/hela\"")]
    BadDefaults { path: PathBuf },
    #[error("defaults cycle: {}", .chain.join(" → "))]
    DefaultsCycle { chain: Vec<String> },
    #[error("{path}: defaults nested more than {max} files deep")]
    DefaultsTooDeep { path: PathBuf, max: usize },
    #[error("no config group `{group}` in {root} (groups: {})", list(.available))]
    UnknownGroup {
        group: String,
        root: PathBuf,
        available: Vec<String>,
    },
    #[error("no option `{option}` in config group `{group}` (available: {})", list(.available))]
    UnknownGroupOption {
        group: String,
        option: String,
        available: Vec<String>,
    },
    #[error("`{text_}`: the defaults list has no `{group}/…` entry to swap; use +{text_} to add one", text_ = short(.text))]
    GroupNotInDefaults { group: String, text: String },
    #[error("bad override `{text_}`: {why}", text_ = short(.text))]
    BadOverride { text: String, why: String },
    #[error("`{text_}` is a sweep value; only `esx sweep` expands sweeps", text_ = short(.text))]
    SweepOutsideSweep { text: String },
    #[error("`{text_}`: no key `{key_}` in the config{}; use +{key_}=… to add it", suggestion_note(.suggestion), text_ = short(.text), key_ = short(.key))]
    UnknownOverrideKey {
        text: String,
        key: String,
        suggestion: Option<String>,
    },
    #[error("`{text_}`: key `{key_}` is already set in {file}; use {key_}=… to change it or ++{key_}=… to add or set it", text_ = short(.text), key_ = short(.key))]
    AlreadySet {
        text: String,
        key: String,
        file: String,
    },
    #[error("`~{key_}`: no key `{key_}` to delete", key_ = short(.key))]
    DeleteMissing { key: String },
    #[error("unknown key `{key_}` in {source_name}{}", suggestion_note(.suggestion), key_ = short(.key))]
    UnknownKey {
        key: String,
        source_name: String,
        suggestion: Option<String>,
    },
    #[error("key `{key_}` in {source_name}: expected {expected}, found {found}", key_ = short(.key))]
    WrongType {
        key: String,
        expected: String,
        found: String,
        source_name: String,
    },
    #[error("key `{key_}` = {value_}: {why}", key_ = short(.key), value_ = short(.value))]
    InvalidValue {
        key: String,
        value: String,
        why: String,
    },
    #[error("interpolation in `{key}`: {why}")]
    Interpolation { key: String, why: String },
}

/// A value from the user, shortened for a one-line message.
fn short(text: &str) -> String {
    crate::text::shorten(text, 40)
}

fn from_note(from: &Option<PathBuf>) -> String {
    match from {
        Some(p) => format!(" (named in the defaults of {})", p.display()),
        None => String::new(),
    }
}

fn suggestion_note(s: &Option<String>) -> String {
    match s {
        Some(k) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
