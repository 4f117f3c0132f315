//! Hydra-style configuration: experiment files with a defaults list of group
//! options, command-line overrides, `${…}` interpolation and a typed schema.

mod compose;
mod interpolate;
pub mod overrides;
mod provider;
mod schema;
mod suggest;
pub mod sweep_value;

#[cfg(test)]
mod proptests;

use std::path::PathBuf;

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
    #[error(
        "`{text}`: the defaults list has no `{group}/…` entry to swap; use +{text} to add one"
    )]
    GroupNotInDefaults { group: String, text: String },
    #[error("bad override `{text}`: {why}")]
    BadOverride { text: String, why: String },
    #[error("`{text}` is a sweep value; only `esx sweep` expands sweeps")]
    SweepOutsideSweep { text: String },
    #[error("`{text}`: no key `{key}` in the config{}; use +{key}=… to add it", suggestion_note(.suggestion))]
    UnknownOverrideKey {
        text: String,
        key: String,
        suggestion: Option<String>,
    },
    #[error("`{text}`: key `{key}` is already set in {file}; use {key}=… to change it or ++{key}=… to add or set it")]
    AlreadySet {
        text: String,
        key: String,
        file: String,
    },
    #[error("`~{key}`: no key `{key}` to delete")]
    DeleteMissing { key: String },
    #[error("unknown key `{key}` in {source_name}{}", suggestion_note(.suggestion))]
    UnknownKey {
        key: String,
        source_name: String,
        suggestion: Option<String>,
    },
    #[error("key `{key}` in {source_name}: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: String,
        found: String,
        source_name: String,
    },
    #[error("key `{key}` = {value}: {why}")]
    InvalidValue {
        key: String,
        value: String,
        why: String,
    },
    #[error("interpolation in `{key}`: {why}")]
    Interpolation { key: String, why: String },
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
