//! Which runs a report shows, and what it reads of each.

use rayon::prelude::*;

use super::ReportError;
use crate::store::query::{self, Curves, ImageInfo, RunInfo};
use crate::store::select::Selection;

/// One run with everything the report draws of it.
pub struct ReportRun {
    pub info: RunInfo,
    /// (split, key) → (step, epoch, value).
    pub curves: Curves,
    pub images: Vec<ImageInfo>,
}

impl ReportRun {
    pub fn curve(&self, split: &str, key: &str) -> Option<&[(i64, i64, f64)]> {
        self.curves
            .get(&(split.to_string(), key.to_string()))
            .map(Vec::as_slice)
            .filter(|c| !c.is_empty())
    }

    pub fn last(&self, split: &str, key: &str) -> Option<f64> {
        self.info.summary(split, key).and_then(|s| s.last)
    }

    pub fn max(&self, split: &str, key: &str) -> Option<f64> {
        self.info.summary(split, key).and_then(|s| s.max)
    }

    pub fn min(&self, split: &str, key: &str) -> Option<f64> {
        self.info.summary(split, key).and_then(|s| s.min)
    }

    /// `name · id`, as legends and picture rows label the run.
    pub fn label(&self) -> String {
        format!("{} · {}", self.info.name, self.info.id)
    }
}

/// A metric runs are ranked by: the first of these that any run recorded.
#[derive(Clone, Copy, Debug)]
pub struct Ranking {
    pub split: &'static str,
    pub key: &'static str,
    pub title: &'static str,
    pub higher_is_better: bool,
}

const RANKINGS: [Ranking; 4] = [
    Ranking {
        split: "val",
        key: "iou",
        title: "best validation IoU",
        higher_is_better: true,
    },
    Ranking {
        split: "val",
        key: "ap50",
        title: "best validation AP50",
        higher_is_better: true,
    },
    Ranking {
        split: "val",
        key: "loss",
        title: "lowest validation loss",
        higher_is_better: false,
    },
    Ranking {
        split: "train",
        key: "loss",
        title: "lowest training loss",
        higher_is_better: false,
    },
];

impl Ranking {
    /// The ranking for these runs (validation IoU when any has it).
    pub fn for_runs<'a>(runs: impl IntoIterator<Item = &'a ReportRun> + Clone) -> Ranking {
        RANKINGS
            .into_iter()
            .find(|r| {
                runs.clone()
                    .into_iter()
                    .any(|run| run.info.summary(r.split, r.key).is_some())
            })
            .unwrap_or(RANKINGS[0])
    }

    /// The run's best value of the metric.
    pub fn value(&self, run: &ReportRun) -> Option<f64> {
        let v = if self.higher_is_better {
            run.max(self.split, self.key)
        } else {
            run.min(self.split, self.key)
        };
        v.filter(|v| v.is_finite())
    }

    /// The epoch at which the run first reached its best value.
    pub fn best_epoch(&self, run: &ReportRun) -> Option<i64> {
        let best = self.value(run)?;
        let curve = run.curve(self.split, self.key)?;
        curve.iter().find(|p| p.2 == best).map(|p| p.1)
    }
}

/// Finds the selected runs, oldest first. Unreadable run databases are
/// reported through `warn` and left out; a selection that keeps nothing is an
/// error naming the roots.
pub fn select(sel: &Selection, warn: &dyn Fn(String)) -> Result<Vec<RunInfo>, ReportError> {
    let found = sel.select()?;
    for e in found.unreadable {
        warn(format!("skipped {e}"));
    }
    if found.runs.is_empty() {
        return Err(ReportError::NoRuns(sel.roots_text()));
    }
    Ok(found.runs)
}

/// Reads every run's curves and picture list, in parallel. A run deleted
/// since it was listed is reported through `warn` and left out.
pub fn load(runs: Vec<RunInfo>, warn: &dyn Fn(String)) -> Result<Vec<ReportRun>, ReportError> {
    let read: Vec<(std::path::PathBuf, Result<ReportRun, ReportError>)> = runs
        .into_par_iter()
        .map(|info| {
            let dir = info.dir.clone();
            let run = (|| {
                let curves = query::curves(&info.dir)?;
                let images = query::images(&info.dir)?;
                Ok(ReportRun {
                    info,
                    curves,
                    images,
                })
            })();
            (dir, run)
        })
        .collect();
    let mut out = Vec::with_capacity(read.len());
    for (dir, run) in read {
        match run {
            Ok(run) => out.push(run),
            Err(e) if vanished(&dir) => warn(format!(
                "skipped {}: deleted while the report read it ({e})",
                dir.display()
            )),
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() {
        return Err(ReportError::NoRuns(
            "the selected runs (all deleted while read)".into(),
        ));
    }
    Ok(out)
}

/// Whether the run in `dir` is gone (its database no longer there).
pub fn vanished(dir: &std::path::Path) -> bool {
    !dir.join(crate::store::RUN_DB).exists()
}
