//! What `esx watch` shows, read afresh from the run stores at each refresh:
//! one row per run, the progress of each sweep, and the curves of one metric.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::{Metric, WatchError};
use crate::store::query::{metrics, RunInfo};
use crate::store::select::Selection;
use crate::store::RunStatus;
use crate::sweep::state::{decide_points, PointStatus};
use crate::sweep::SweepRecord;

/// One run as the table shows it.
#[derive(Clone, Debug)]
pub struct Row {
    pub info: RunInfo,
    /// Epochs finished, and planned.
    pub epoch: i64,
    pub epochs: Option<i64>,
    pub images_per_s: Option<f64>,
    /// Seconds until it ends, while it runs and has finished an epoch.
    pub eta: Option<f64>,
    /// Its best value of the board's objective.
    pub best: Option<f64>,
    /// `key=value` of the swept keys.
    pub swept: String,
}

/// Where one sweep stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepProgress {
    pub id: String,
    /// Points it will have (None: no sweep.db beside its runs).
    pub planned: Option<usize>,
    pub done: usize,
    pub running: usize,
    pub failed: usize,
    pub pruned: usize,
}

/// The metric runs are ranked by, and which way is better.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Objective {
    pub metric: Metric,
    pub higher_is_better: bool,
}

#[derive(Clone, Debug)]
pub struct Board {
    pub rows: Vec<Row>,
    pub sweeps: Vec<SweepProgress>,
    pub objective: Objective,
    /// Every metric some run recorded, validation first.
    pub metrics: Vec<Metric>,
    /// Run databases that could not be read, as one line each.
    pub unreadable: Vec<String>,
}

/// The metrics esx's trainer writes: `--metric` may name one before any run
/// has recorded it (a sweep that just started).
const WRITTEN: [&str; 16] = [
    "val/iou",
    "val/loss",
    "val/inst",
    "val/var",
    "val/seed",
    "train/loss",
    "train/inst",
    "train/var",
    "train/seed",
    "train/lr",
    "train/images_per_s",
    "train/seconds",
    "step/loss",
    "step/inst",
    "step/var",
    "step/seed",
];

impl Board {
    pub fn load(selection: &Selection) -> Result<Board, WatchError> {
        let found = selection.select()?;
        let unreadable = found.unreadable.iter().map(|e| e.to_string()).collect();
        let runs = found.runs;
        let objective = objective_of(&runs);
        let sweeps = sweep_progress(&runs);
        let mut metrics: Vec<Metric> = runs
            .iter()
            .flat_map(|r| r.summary.iter().map(|s| Metric::new(&s.split, &s.key)))
            .collect();
        metrics.sort_by_key(|m| (split_rank(&m.split), m.split.clone(), m.key.clone()));
        metrics.dedup();
        let rows = runs.into_iter().map(|r| row(r, &objective)).collect();
        Ok(Board {
            rows,
            sweeps,
            objective,
            metrics,
            unreadable,
        })
    }

    /// The metric to chart when none was asked for: the objective when some
    /// run has it, else the first recorded one.
    pub fn default_metric(&self) -> Metric {
        if self.metrics.contains(&self.objective.metric) || self.metrics.is_empty() {
            return self.objective.metric.clone();
        }
        ["val/loss", "train/loss", "step/loss"]
            .into_iter()
            .map(|t| Metric::parse(t).expect("a valid metric"))
            .find(|m| self.metrics.contains(m))
            .unwrap_or_else(|| self.metrics[0].clone())
    }

    /// Checks a metric the user named: one some run recorded or esx writes.
    pub fn check_metric(&self, metric: &Metric) -> Result<(), WatchError> {
        let text = metric.to_string();
        if self.metrics.contains(metric) || WRITTEN.contains(&text.as_str()) {
            return Ok(());
        }
        let known: Vec<String> = if self.metrics.is_empty() {
            WRITTEN.iter().map(|s| s.to_string()).collect()
        } else {
            self.metrics.iter().map(Metric::to_string).collect()
        };
        Err(WatchError::UnknownMetric {
            metric: text,
            known: known.join(", "),
        })
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.rows.iter().position(|r| r.info.id == id)
    }
}

/// A run's curve of `metric`: (step, value) for per-step metrics, else
/// (epoch, value). A run that vanished since the listing has none.
pub fn curve(dir: &Path, metric: &Metric) -> Vec<(f64, f64)> {
    let Ok(points) = metrics(dir, Some(&[metric.key.as_str()])) else {
        return Vec::new();
    };
    let by_step = metric.split == "step";
    points
        .into_iter()
        .filter(|p| p.split == metric.split)
        .filter_map(|p| {
            let x = if by_step { p.step } else { p.epoch } as f64;
            p.value.map(|v| (x, v))
        })
        .collect()
}

/// The curves of several runs, read in parallel.
pub fn curves(dirs: &[&Path], metric: &Metric) -> Vec<Vec<(f64, f64)>> {
    dirs.par_iter().map(|d| curve(d, metric)).collect()
}

fn split_rank(split: &str) -> u8 {
    match split {
        "val" => 0,
        "train" => 1,
        "step" => 2,
        _ => 3,
    }
}

/// The objective of the one sweep all runs belong to, else validation IoU.
fn objective_of(runs: &[RunInfo]) -> Objective {
    let mut sweep_dirs: Vec<&Path> = runs
        .iter()
        .filter(|r| r.sweep_id.is_some())
        .filter_map(|r| r.dir.parent())
        .collect();
    sweep_dirs.dedup();
    let all_in_one = sweep_dirs.len() == 1 && runs.iter().all(|r| r.sweep_id.is_some());
    if all_in_one {
        if let Ok(Some(search)) = SweepRecord::search(sweep_dirs[0]) {
            return Objective {
                metric: Metric::new(&search.objective.split, &search.objective.key),
                higher_is_better: search.direction == crate::config::Direction::Max,
            };
        }
    }
    Objective {
        metric: Metric::new("val", "iou"),
        higher_is_better: true,
    }
}

fn row(info: RunInfo, objective: &Objective) -> Row {
    let epochs = info
        .params
        .get("epochs")
        .and_then(|p| p.num)
        .map(|n| n as i64);
    let epoch = info.summary("train", "loss").map_or(0, |s| s.count);
    let epoch = epochs.map_or(epoch, |n| epoch.min(n));
    let images_per_s = info.summary("train", "images_per_s").and_then(|s| s.last);
    let eta = match (info.status, epochs) {
        (RunStatus::Running, Some(n)) if epoch > 0 => {
            Some(info.duration() / epoch as f64 * (n - epoch).max(0) as f64)
        }
        _ => None,
    };
    let best = info
        .summary(&objective.metric.split, &objective.metric.key)
        .and_then(|s| {
            if objective.higher_is_better {
                s.max
            } else {
                s.min
            }
        });
    let swept = info
        .swept_values()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    Row {
        info,
        epoch,
        epochs,
        images_per_s,
        eta,
        best,
        swept,
    }
}

/// Each sweep's points by their deciding attempt (a failed run re-run and
/// completed counts once, as completed).
fn sweep_progress(runs: &[RunInfo]) -> Vec<SweepProgress> {
    let mut by_sweep: BTreeMap<&str, (Option<&Path>, Vec<RunInfo>)> = BTreeMap::new();
    for r in runs {
        if let Some(id) = &r.sweep_id {
            let entry = by_sweep.entry(id).or_insert((r.dir.parent(), Vec::new()));
            entry.1.push(r.clone());
        }
    }
    by_sweep
        .into_iter()
        .map(|(id, (dir, members))| {
            let planned = dir.and_then(|d| SweepRecord::planned(d).ok().flatten());
            let seen = members
                .iter()
                .filter_map(|r| r.sweep_index)
                .max()
                .map_or(0, |i| i as usize + 1);
            let n = planned.unwrap_or(0).max(seen);
            let mut p = SweepProgress {
                id: id.to_string(),
                planned,
                done: 0,
                running: 0,
                failed: 0,
                pruned: 0,
            };
            for point in decide_points(members, id, n) {
                match point.status {
                    PointStatus::Completed => p.done += 1,
                    PointStatus::Running => p.running += 1,
                    PointStatus::Failed | PointStatus::Crashed | PointStatus::Interrupted => {
                        p.failed += 1
                    }
                    PointStatus::Pruned => p.pruned += 1,
                    PointStatus::Pending => {}
                }
            }
            p
        })
        .collect()
}
