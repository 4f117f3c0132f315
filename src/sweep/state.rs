//! Where each point of a sweep stands, read from the runs in its folder: a
//! point may have several attempts (a failed run and its re-run); one
//! completed attempt completes it, otherwise the latest attempt speaks.

use std::path::PathBuf;

use serde::Serialize;

use super::SweepError;
use crate::store::query::{list_runs, RunInfo};
use crate::store::RunStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PointStatus {
    /// No attempt yet.
    Pending,
    Running,
    Completed,
    Failed,
    Interrupted,
    /// Stopped early by the pruner: final, like completed.
    Pruned,
    Crashed,
}

impl PointStatus {
    /// Nothing more will happen to the point (another launch runs it
    /// again only if it failed or crashed).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PointStatus::Completed
                | PointStatus::Pruned
                | PointStatus::Failed
                | PointStatus::Crashed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PointStatus::Pending => "pending",
            PointStatus::Running => "running",
            PointStatus::Completed => "completed",
            PointStatus::Failed => "failed",
            PointStatus::Interrupted => "interrupted",
            PointStatus::Pruned => "pruned",
            PointStatus::Crashed => "crashed",
        }
    }
}

/// A point's status and the attempt it comes from.
#[derive(Clone, Debug, Serialize)]
pub struct PointState {
    pub index: usize,
    pub status: PointStatus,
    /// The deciding attempt's run, if any.
    pub run: Option<RunInfo>,
    pub attempts: usize,
}

impl PointState {
    pub fn run_dir(&self) -> Option<&PathBuf> {
        self.run.as_ref().map(|r| &r.dir)
    }

    /// The best validation IoU of the deciding attempt.
    pub fn best_val_iou(&self) -> Option<f64> {
        self.run
            .as_ref()
            .and_then(|r| r.summary("val", "iou"))
            .and_then(|s| s.max)
    }
}

/// The state of points `0..n` of the sweep `id` from the runs under `dir`.
/// Runs of another sweep or outside `0..n` are ignored; unreadable databases
/// are skipped (a run being created is briefly one).
pub fn point_states(
    dir: &std::path::Path,
    id: &str,
    n: usize,
) -> Result<Vec<PointState>, SweepError> {
    let runs = if dir.is_dir() {
        list_runs(dir)?.into_iter().flatten().collect()
    } else {
        Vec::new()
    };
    Ok(decide_points(runs, id, n))
}

/// The state of points `0..n` of the sweep `id` among `runs`.
pub fn decide_points(runs: Vec<RunInfo>, id: &str, n: usize) -> Vec<PointState> {
    let mut attempts: Vec<Vec<RunInfo>> = vec![Vec::new(); n];
    for run in runs {
        let index = match (&run.sweep_id, run.sweep_index) {
            (Some(s), Some(i)) if s == id && i >= 0 && (i as usize) < n => i as usize,
            _ => continue,
        };
        attempts[index].push(run);
    }
    attempts
        .into_iter()
        .enumerate()
        .map(|(index, mut runs)| {
            runs.sort_by(|a, b| a.created.total_cmp(&b.created));
            let count = runs.len();
            let deciding = match runs
                .iter()
                .rposition(|r| matches!(r.status, RunStatus::Completed | RunStatus::Pruned))
            {
                Some(i) => Some(runs.swap_remove(i)),
                None => runs.pop(),
            };
            let status = match deciding.as_ref().map(|r| r.status) {
                None => PointStatus::Pending,
                Some(RunStatus::Running) => PointStatus::Running,
                // (a sweep never imports; an imported model is a finished one)
                Some(RunStatus::Completed | RunStatus::Imported) => PointStatus::Completed,
                Some(RunStatus::Failed) => PointStatus::Failed,
                Some(RunStatus::Interrupted) => PointStatus::Interrupted,
                Some(RunStatus::Pruned) => PointStatus::Pruned,
                Some(RunStatus::Crashed) => PointStatus::Crashed,
            };
            PointState {
                index,
                status,
                run: deciding,
                attempts: count,
            }
        })
        .collect()
}
