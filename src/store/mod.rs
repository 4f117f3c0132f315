//! The run store: one SQLite database per run (`<root>/<run-id>/run.db`, or
//! `<root>/<sweep-id>/<n>-<run-id>/run.db` in sweeps), written by exactly one
//! process and read by any number.

pub mod claim;
pub mod export;
pub mod filter;
pub mod heartbeat;
pub mod journal;
mod params;
pub mod provenance;
pub mod query;
pub(crate) mod read_db;
mod schema;
pub mod select;
mod summary;
pub mod tags;
mod writer;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use claim::Claim;
pub use params::{flatten_params, found_by_the_run};
pub use schema::VERSION as SCHEMA_VERSION;
pub use writer::{NewRun, Outcome, RunWriter, SweepMembership};

/// The database file in every run directory.
pub const RUN_DB: &str = "run.db";

/// The folder of a run's checkpoints, beside its database.
pub const CHECKPOINTS: &str = "checkpoints";

/// Removes what a process killed while writing a checkpoint left behind
/// (`*.tmp` in the checkpoints folder); call it holding the run's claim.
pub fn remove_partial_checkpoints(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir.join(CHECKPOINTS)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A run's checkpoint `which` (`last`, `best`).
pub fn checkpoint_file(run_dir: &std::path::Path, which: &str) -> std::path::PathBuf {
    run_dir
        .join(CHECKPOINTS)
        .join(format!("{which}.safetensors"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
    /// Stopped early by its sweep's pruner (a checkpoint kept): a result,
    /// not a failure.
    Pruned,
    /// A model trained elsewhere, recorded by `esx import`.
    Imported,
    /// Recorded as running, but its process is gone.
    Crashed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Pruned => "pruned",
            RunStatus::Imported => "imported",
            RunStatus::Crashed => "crashed",
        }
    }

    fn parse(text: &str) -> RunStatus {
        match text {
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            "pruned" => RunStatus::Pruned,
            "imported" => RunStatus::Imported,
            _ => RunStatus::Running,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    At {
        path: PathBuf,
        source: Box<StoreError>,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("not an esx run database")]
    NotARunDb,
    #[error("written by a newer esx (schema {found}, this build knows {known}); upgrade esx")]
    NewerSchema { found: i64, known: i64 },
    #[error("runs directory {0} does not exist")]
    NoRoot(PathBuf),
    #[error("runs directory {0} is not a directory")]
    RootNotADir(PathBuf),
    #[error("no run matches `{arg}` under {roots}")]
    NoSuchRun { arg: String, roots: String },
    #[error("no runs of sweep `{arg}` under {roots}")]
    NoSuchSweep { arg: String, roots: String },
    #[error("`{arg}` matches several runs: {}; give more of the id", .candidates.join(", "))]
    AmbiguousRun {
        arg: String,
        candidates: Vec<String>,
    },
    #[error("run {id} is in {} folders ({}): copies of one run; name the folder instead", .dirs.len(), .dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    SameId { id: String, dirs: Vec<PathBuf> },
    #[error("{what} is {holder}")]
    Claimed { what: String, holder: String },
    #[error("{env}={0}: expected auto, wal or delete", env = journal::ENV)]
    BadJournal(String),
    #[error("bad tag `{tag}`: {why}")]
    BadTag { tag: String, why: String },
    #[error("bad filter `{text}`: {why}")]
    BadFilter { text: String, why: String },
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn open(path: &Path, source: rusqlite::Error) -> StoreError {
        StoreError::Open {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Names the database an error came from.
    fn at(self, path: &Path) -> StoreError {
        match self {
            e @ (StoreError::At { .. } | StoreError::Open { .. }) => e,
            e => StoreError::At {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }
}

#[cfg(test)]
mod tests;
