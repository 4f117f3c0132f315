//! A task: one point of a sweep to run now (as a new run, or resuming its
//! interrupted one), and how its process ended.

use std::path::PathBuf;

use serde::Serialize;

use super::state::{PointState, PointStatus};
use super::{Point, Sweep};
use crate::store::checkpoint_file;

/// One point to run now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Task {
    pub index: usize,
    /// Some(run directory) to resume an interrupted run from its checkpoint.
    pub resume: Option<PathBuf>,
    #[serde(skip)]
    pub point: Point,
}

impl Task {
    /// Completed, pruned and still-running points need nothing; an interrupted run
    /// with a checkpoint continues; anything else starts afresh.
    pub fn for_point(point: &Point, state: &PointState) -> Option<Task> {
        let resume = match state.status {
            PointStatus::Completed | PointStatus::Pruned | PointStatus::Running => return None,
            PointStatus::Interrupted => state
                .run_dir()
                .filter(|d| checkpoint_file(d, "last").is_file())
                .cloned(),
            _ => None,
        };
        Some(Task {
            index: point.index,
            resume,
            point: point.clone(),
        })
    }

    /// The `esx run` arguments of this task.
    pub fn args(&self, sweep: &Sweep, extra: &[String]) -> Vec<String> {
        match &self.resume {
            Some(dir) => vec![
                "run".into(),
                "--resume".into(),
                dir.display().to_string(),
                "--runs".into(),
                sweep.runs_root.display().to_string(),
                "--quiet".into(),
            ],
            None => sweep.run_args(&self.point, extra),
        }
    }
}

/// How one child process ended (local launcher).
#[derive(Clone, Debug, Serialize)]
pub struct TaskOutcome {
    pub index: usize,
    /// The exit code; None when a signal ended it.
    pub exit: Option<i32>,
    /// Spawn to exit, as the launcher saw it.
    pub seconds: f64,
    pub log: PathBuf,
}
