//! What a sweep does when it is run: plan → record → which points still need
//! a run → the data made ready once → the launcher → the points' final state.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::local::{self, LocalOptions};
use super::slurm::{self, SlurmOptions};
use super::state::{point_states, PointState, PointStatus};
use super::{Point, Sweep, SweepError, SweepRecord};
use crate::progress::Reporter;
use crate::store::checkpoint_file;
use crate::store::claim::{Claim, SWEEP_LOCK};
use crate::train::Interrupt;

/// One point to run now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Task {
    pub index: usize,
    /// Some(run directory) to resume an interrupted run from its checkpoint.
    pub resume: Option<PathBuf>,
}

impl Task {
    /// Completed and still-running points need nothing; an interrupted run
    /// with a checkpoint continues; anything else starts afresh.
    pub fn for_point(point: &Point, state: &PointState) -> Option<Task> {
        let resume = match state.status {
            PointStatus::Completed | PointStatus::Running => return None,
            PointStatus::Interrupted => state
                .run_dir()
                .filter(|d| checkpoint_file(d, "last").is_file())
                .cloned(),
            _ => None,
        };
        Some(Task {
            index: point.index,
            resume,
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
            None => sweep.run_args(&sweep.points[self.index], extra),
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
    /// Every point completed.
    pub fn all_completed(&self) -> bool {
        self.points
            .iter()
            .all(|(_, s)| s.status == PointStatus::Completed)
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
    let mut tasks = sweep.tasks(&states(sweep)?);
    if let Launcher::Slurm(_) = launcher {
        let queued = slurm::queued_points(&record)?;
        tasks.retain(|t| !queued.contains(&t.index));
    }
    let skipped = sweep.points.len() - tasks.len();
    reporter.note(format!(
        "sweep {} in {}: {} points, {} to run{}",
        sweep.id,
        sweep.dir.display(),
        sweep.points.len(),
        tasks.len(),
        if skipped > 0 {
            format!(" ({skipped} completed or in progress)")
        } else {
            String::new()
        }
    ));
    if !tasks.is_empty() {
        sweep.prepare_data(&tasks, reporter);
    }
    let mut outcomes = Vec::new();
    let mut job_id = None;
    let mut waited = true;
    match launcher {
        Launcher::Local(options) => {
            if !tasks.is_empty() {
                let indices: Vec<usize> = tasks.iter().map(|t| t.index).collect();
                record.add_launch("local", None, &indices, None)?;
            }
            outcomes = local::run(sweep, &tasks, options, exe, reporter, interrupt)?;
            // Points still queued when an interrupt came were never started.
            tasks.retain(|t| outcomes.iter().any(|o| o.index == t.index));
        }
        Launcher::Slurm(options) => {
            if !tasks.is_empty() {
                let job = slurm::submit(sweep, &record, &tasks, options, exe)?;
                reporter.note(format!(
                    "submitted Slurm array job {job} ({} tasks)",
                    tasks.len()
                ));
                job_id = Some(job);
            }
            waited = options.wait;
            if options.wait {
                if let Some(job) = &job_id {
                    slurm::wait(job, options.poll_seconds, reporter, interrupt)?;
                }
            }
        }
    }
    let final_states = states(sweep)?;
    Ok(SweepReport {
        id: sweep.id.clone(),
        dir: sweep.dir.clone(),
        axes: sweep.axes.iter().map(|a| a.key.clone()).collect(),
        points: sweep.points.iter().cloned().zip(final_states).collect(),
        launched: tasks,
        skipped,
        outcomes,
        job_id,
        waited,
        interrupted: interrupt.requested(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
