//! What a sweep does when it is run: plan → record → which points still need
//! a run → the data made ready once → the launcher → the points' final state.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::local::{self, LocalOptions};
use super::slurm::{self, SlurmOptions};
use super::source::{Planned, Proposals, TaskSource};
use super::state::{point_states, PointState, PointStatus};
use super::task::{Task, TaskOutcome};
use super::{Mode, Point, Sweep, SweepError, SweepRecord};
use crate::progress::Reporter;
use crate::store::claim::{Claim, SWEEP_LOCK};
use crate::train::Interrupt;

pub enum Launcher {
    Local(LocalOptions),
    Slurm(SlurmOptions),
}

/// The sweep after a launch: every point's state, and what this launch did.
#[derive(Debug, Serialize)]
pub struct SweepReport {
    pub id: String,
    pub dir: PathBuf,
    pub axes: Vec<String>,
    /// The search in one line.
    pub search: String,
    pub objective: String,
    /// The best point's index and objective.
    pub best: Option<(usize, f64)>,
    /// Each point's best objective value, by index.
    pub objectives: Vec<Option<f64>>,
    pub points: Vec<(Point, PointState)>,
    /// Points this invocation started (locally) or submitted (Slurm).
    pub launched: Vec<Task>,
    /// Points skipped because an earlier attempt completed or is running.
    pub skipped: usize,
    pub outcomes: Vec<TaskOutcome>,
    /// The Slurm job this invocation submitted.
    pub job_id: Option<String>,
    /// Whether the final states were waited for (always, locally).
    pub waited: bool,
    pub interrupted: bool,
    /// Wall seconds of this invocation, planning to the end.
    pub seconds: f64,
}

impl SweepReport {
    /// Every point completed (or was pruned: a result, not a failure).
    pub fn all_completed(&self) -> bool {
        self.points
            .iter()
            .all(|(_, s)| matches!(s.status, PointStatus::Completed | PointStatus::Pruned))
    }
}

/// The states of a sweep's points now.
pub fn states(sweep: &Sweep) -> Result<Vec<PointState>, SweepError> {
    point_states(&sweep.dir, &sweep.id, sweep.points.len())
}

/// Records the sweep, runs what is left with `launcher`, and reports.
pub fn execute(
    sweep: &Sweep,
    launcher: &Launcher,
    exe: &Path,
    command: &[String],
    reporter: &Reporter,
    interrupt: &Interrupt,
) -> Result<SweepReport, SweepError> {
    let started = std::time::Instant::now();
    // One launcher per sweep, claimed before its record is touched: a
    // second `esx sweep` of the same command would start the same points.
    std::fs::create_dir_all(&sweep.dir).map_err(|e| SweepError::io(&sweep.dir, e))?;
    let _claim = Claim::take(
        &sweep.dir,
        SWEEP_LOCK,
        &format!("sweep {}", sweep.id),
        "run",
    )?;
    let record = SweepRecord::create_or_open(sweep, command)?;
    let adaptive = matches!(sweep.mode, Mode::Tpe { .. });
    let initial = states(sweep)?;
    let mut tasks = sweep.tasks(&initial);
    if let Launcher::Slurm(_) = launcher {
        let queued = slurm::queued_points(&record)?;
        tasks.retain(|t| !queued.contains(&t.index));
    }
    let planned = match sweep.mode {
        Mode::Tpe { n, .. } => n.max(sweep.points.len()),
        _ => sweep.points.len(),
    };
    let to_run = tasks.len() + planned - sweep.points.len();
    let skipped = planned - to_run;
    reporter.note(format!(
        "sweep {} in {}: {}, {} points, {} to run{}",
        sweep.id,
        sweep.dir.display(),
        sweep.search.describe(),
        planned,
        to_run,
        if skipped > 0 {
            format!(" ({skipped} ended or in progress)")
        } else {
            String::new()
        }
    ));
    if !tasks.is_empty() {
        sweep.prepare_data(&tasks, reporter);
    }
    let mut source: Box<dyn TaskSource> = if adaptive {
        Box::new(Proposals::new(
            sweep,
            &record,
            tasks.clone(),
            &initial,
            reporter,
        )?)
    } else {
        Box::new(Planned::new(sweep, &record, tasks.clone(), &initial)?)
    };
    let mut outcomes = Vec::new();
    let mut job_id = None;
    let mut waited = true;
    let mut launched = Vec::new();
    let result = match launcher {
        Launcher::Local(options) => {
            if !tasks.is_empty() && !adaptive {
                let indices: Vec<usize> = tasks.iter().map(|t| t.index).collect();
                record.add_launch("local", None, &indices, None)?;
            }
            let mut on_start = |task: &Task| {
                launched.push(task.clone());
                if adaptive {
                    record.add_launch("local", None, &[task.index], None)?;
                }
                Ok(())
            };
            local::run(
                sweep,
                &mut *source,
                options,
                exe,
                reporter,
                interrupt,
                &mut on_start,
            )
            .map(|o| outcomes = o)
        }
        Launcher::Slurm(options) if adaptive => {
            let jobs = slurm::run_source(
                sweep,
                &record,
                &mut *source,
                options,
                exe,
                reporter,
                interrupt,
            );
            jobs.map(|jobs| {
                job_id = (!jobs.is_empty()).then(|| jobs.join(","));
            })
        }
        Launcher::Slurm(options) => {
            launched = tasks.clone();
            if !tasks.is_empty() {
                let job = slurm::submit(sweep, &record, &tasks, options, exe)?;
                reporter.note(format!(
                    "submitted Slurm array job {job} ({} tasks)",
                    tasks.len()
                ));
                job_id = Some(job);
            }
            waited = options.wait;
            match (&job_id, options.wait) {
                (Some(job), true) => slurm::wait(job, options.poll_seconds, reporter, interrupt)
                    .map(|()| {
                        for t in &tasks {
                            let _ = source.ended(t.index);
                        }
                    }),
                _ => Ok(()),
            }
        }
    };
    result?;
    let points = source.points();
    let final_states = point_states(&sweep.dir, &sweep.id, points.len())?;
    // Each point's objective, read from its store once.
    let objectives: Vec<Option<f64>> = final_states
        .iter()
        .map(|s| {
            s.run
                .as_ref()
                .and_then(|r| super::source::objective_of(&sweep.search, &r.dir).0)
        })
        .collect();
    if let Launcher::Local(_) = launcher {
        // Points still queued when an interrupt came were never started.
        launched.retain(|t: &Task| outcomes.iter().any(|o| o.index == t.index));
    }
    Ok(SweepReport {
        id: sweep.id.clone(),
        dir: sweep.dir.clone(),
        axes: sweep.axes.iter().map(|a| a.key.clone()).collect(),
        search: sweep.search.describe(),
        objective: sweep.search.objective.to_string(),
        best: best_point(sweep, &final_states, &objectives),
        objectives,
        points: points.into_iter().zip(final_states).collect(),
        launched,
        skipped,
        outcomes,
        job_id,
        waited,
        interrupted: interrupt.requested(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl SweepReport {
    /// Where points completed but none recorded the objective (a metric no
    /// run records, mistyped): what the completed runs do record.
    pub fn objective_unrecorded(&self) -> Option<Vec<String>> {
        let completed: Vec<&PointState> = self
            .points
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.status == PointStatus::Completed)
            .collect();
        if completed.is_empty() || self.objectives.iter().any(Option::is_some) {
            return None;
        }
        let mut keys: Vec<String> = completed
            .iter()
            .filter_map(|s| s.run.as_ref())
            .flat_map(|r| r.summary.iter().map(|m| format!("{}/{}", m.split, m.key)))
            .filter(|k| !k.starts_with("step/"))
            .collect();
        keys.sort();
        keys.dedup();
        Some(keys)
    }
}

/// The point with the best objective among those that ended with one.
fn best_point(
    sweep: &Sweep,
    states: &[PointState],
    objectives: &[Option<f64>],
) -> Option<(usize, f64)> {
    states
        .iter()
        .zip(objectives)
        .filter(|(s, _)| matches!(s.status, PointStatus::Completed | PointStatus::Pruned))
        .filter_map(|(s, v)| v.map(|v| (s.index, v)))
        .reduce(|a, b| if sweep.search.better(b.1, a.1) { b } else { a })
}
