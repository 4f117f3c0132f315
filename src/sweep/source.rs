//! Where a launcher's tasks come from: the points planned up front (grid,
//! random), or TPE proposing each next point when a slot frees, from the
//! results in the runs' stores. Both record in `sweep.db` how each point
//! ended and the best point so far.

use std::collections::VecDeque;
use std::path::Path;

use super::record::Proposal;
use super::search::Search;
use super::state::{point_states, PointState, PointStatus};
use super::task::Task;
use super::tpe::{self, Observation, Outcome};
use super::{Point, Sweep, SweepError, SweepRecord};
use crate::progress::Reporter;
use crate::store::query::metric_by_epoch;

pub trait TaskSource {
    /// The next task to start now; None when there is nothing more.
    fn next(&mut self) -> Result<Option<Task>, SweepError>;
    /// A task this launch started has ended (its run's store says how).
    fn ended(&mut self, index: usize) -> Result<(), SweepError>;
    /// How many tasks this launch runs at most.
    fn total(&self) -> usize;
    /// Every point of the sweep so far.
    fn points(&self) -> Vec<Point>;
}

/// The best of a run's recorded objective values, and the keys it records.
pub fn objective_of(search: &Search, run_dir: &Path) -> (Option<f64>, Vec<String>) {
    let objective = &search.objective;
    match metric_by_epoch(run_dir, &objective.split, &objective.key) {
        Ok((values, keys)) => (
            values
                .into_iter()
                .map(|(_, v)| v)
                .reduce(|a, b| if search.better(b, a) { b } else { a }),
            keys,
        ),
        Err(_) => (None, Vec::new()),
    }
}

/// The results so far: each ended point's objective, the best point, and
/// the check that the objective exists at all.
struct Results<'a> {
    sweep: &'a Sweep,
    record: &'a SweepRecord,
    best: Option<(usize, f64)>,
}

impl<'a> Results<'a> {
    /// The results of the points that have ended, and in sweep.db those it
    /// misses: points that ended while no launcher was there to record them
    /// (it was killed, and its runs went on).
    fn new(
        sweep: &'a Sweep,
        record: &'a SweepRecord,
        states: &[PointState],
    ) -> Result<Results<'a>, SweepError> {
        let mut results = Results {
            sweep,
            record,
            best: None,
        };
        let recorded = record.results()?;
        let mut missing = Vec::new();
        for s in states {
            let Some(run) = &s.run else { continue };
            let ended = matches!(
                s.status,
                PointStatus::Completed | PointStatus::Pruned | PointStatus::Failed
            );
            let value = if ended {
                objective_of(&sweep.search, &run.dir).0
            } else {
                None
            };
            if let (Some(v), PointStatus::Completed | PointStatus::Pruned) = (value, s.status) {
                results.offer(s.index, v);
            }
            let known = recorded.get(&s.index).is_some_and(|(id, status)| {
                id.as_deref() == Some(run.id.as_str()) && status == s.status.as_str()
            });
            if ended && !known {
                missing.push((s.index, run.id.clone(), s.status, value));
            }
        }
        for (index, id, status, value) in missing {
            record.set_result(index, Some(&id), status.as_str(), value, results.best)?;
        }
        Ok(results)
    }

    /// TPE and the pruners need the objective; a plain grid or random
    /// search only reports it.
    fn needs_objective(&self) -> bool {
        let search = &self.sweep.search;
        search.method == super::search::SearchMethod::Tpe || !search.pruning.is_none()
    }

    fn offer(&mut self, index: usize, value: f64) {
        if self
            .best
            .is_none_or(|(_, b)| self.sweep.search.better(value, b))
        {
            self.best = Some((index, value));
        }
    }

    /// Records how point `index` ended; a run that trained an epoch or more
    /// and ended (completed, pruned, or failed at its first rung) without
    /// ever recording the objective is an error: every other run would miss
    /// it too.
    fn ended(&mut self, state: &PointState) -> Result<(), SweepError> {
        let Some(run) = &state.run else {
            return Ok(());
        };
        let (value, keys) = objective_of(&self.sweep.search, &run.dir);
        let trained = run.summary("train", "loss").is_some_and(|s| s.count > 0);
        if let Some(v) = value {
            self.offer(state.index, v);
        } else if trained && state.status != PointStatus::Interrupted && self.needs_objective() {
            return Err(SweepError::NoObjective {
                objective: self.sweep.search.objective.to_string(),
                index: state.index,
                keys: if keys.is_empty() {
                    "nothing".into()
                } else {
                    keys.join(", ")
                },
            });
        }
        self.record.set_result(
            state.index,
            Some(&run.id),
            state.status.as_str(),
            value,
            self.best,
        )
    }
}

fn state_of(sweep: &Sweep, n: usize, index: usize) -> Result<PointState, SweepError> {
    let states = point_states(&sweep.dir, &sweep.id, n)?;
    Ok(states.into_iter().nth(index).expect("index is below n"))
}

/// The tasks planned up front.
pub struct Planned<'a> {
    tasks: VecDeque<Task>,
    total: usize,
    results: Results<'a>,
}

impl<'a> Planned<'a> {
    pub fn new(
        sweep: &'a Sweep,
        record: &'a SweepRecord,
        tasks: Vec<Task>,
        states: &[PointState],
    ) -> Result<Planned<'a>, SweepError> {
        Ok(Planned {
            total: tasks.len(),
            tasks: tasks.into(),
            results: Results::new(sweep, record, states)?,
        })
    }
}

impl TaskSource for Planned<'_> {
    fn next(&mut self) -> Result<Option<Task>, SweepError> {
        Ok(self.tasks.pop_front())
    }

    fn ended(&mut self, index: usize) -> Result<(), SweepError> {
        let sweep = self.results.sweep;
        let state = state_of(sweep, sweep.points.len(), index)?;
        self.results.ended(&state)
    }

    fn total(&self) -> usize {
        self.total
    }

    fn points(&self) -> Vec<Point> {
        self.results.sweep.points.clone()
    }
}

/// TPE: recorded points that need running first, then one proposal per
/// free slot until the search has its trials.
pub struct Proposals<'a> {
    sweep: &'a Sweep,
    record: &'a SweepRecord,
    points: Vec<Point>,
    configs: Vec<crate::config::Config>,
    /// Recorded points to run again or resume.
    again: VecDeque<Task>,
    /// Started by this launch and not ended yet.
    live: Vec<usize>,
    trials: usize,
    total: usize,
    results: Results<'a>,
    reporter: &'a Reporter,
}

impl<'a> Proposals<'a> {
    pub fn new(
        sweep: &'a Sweep,
        record: &'a SweepRecord,
        tasks: Vec<Task>,
        states: &[PointState],
        reporter: &'a Reporter,
    ) -> Result<Proposals<'a>, SweepError> {
        let trials = sweep.search.trials.unwrap_or(0);
        Ok(Proposals {
            sweep,
            record,
            points: sweep.points.clone(),
            configs: sweep.configs.clone(),
            total: tasks.len() + trials.saturating_sub(sweep.points.len()),
            again: tasks.into(),
            live: Vec::new(),
            trials,
            results: Results::new(sweep, record, states)?,
            reporter,
        })
    }

    fn history(&self) -> Result<Vec<Observation>, SweepError> {
        history(self.sweep, &self.points, &self.live)
    }
}

/// What TPE knows: each point's result, or that it is still running (or
/// will run: `live`, started by this launch).
fn history(
    sweep: &Sweep,
    points: &[Point],
    live: &[usize],
) -> Result<Vec<Observation>, SweepError> {
    let states = point_states(&sweep.dir, &sweep.id, points.len())?;
    let search = &sweep.search;
    Ok(points
        .iter()
        .zip(&states)
        .filter_map(|(p, s)| {
            let value = || s.run.as_ref().and_then(|r| objective_of(search, &r.dir).0);
            let outcome = match s.status {
                _ if live.contains(&p.index) && !s.status.is_final() => Outcome::Running,
                PointStatus::Completed => Outcome::Completed(value()?),
                PointStatus::Pruned => Outcome::Pruned(value()?),
                PointStatus::Running | PointStatus::Interrupted | PointStatus::Pending => {
                    Outcome::Running
                }
                PointStatus::Failed | PointStatus::Crashed => return None,
            };
            Some(Observation {
                values: p.values.clone(),
                outcome,
            })
        })
        .collect())
}

/// The next `n` points a TPE search would propose now, if each started
/// before any other ended (what `--dry-run` shows; nothing is recorded).
pub fn preview(sweep: &Sweep, n: usize) -> Result<Vec<(Point, String)>, SweepError> {
    let mut points = sweep.points.clone();
    let trials = sweep.search.trials.unwrap_or(0);
    let mut out = Vec::new();
    let mut live: Vec<usize> = Vec::new();
    while out.len() < n && points.len() < trials {
        let h = history(sweep, &points, &live)?;
        let (point, how) = tpe::propose(&sweep.axes, &sweep.search, points.len(), &h);
        live.push(point.index);
        points.push(point.clone());
        out.push((point, how));
    }
    Ok(out)
}

impl TaskSource for Proposals<'_> {
    fn next(&mut self) -> Result<Option<Task>, SweepError> {
        if let Some(task) = self.again.pop_front() {
            self.live.push(task.index);
            return Ok(Some(task));
        }
        if self.points.len() >= self.trials {
            return Ok(None);
        }
        let history = self.history()?;
        let index = self.points.len();
        let (point, how) = tpe::propose(&self.sweep.axes, &self.sweep.search, index, &history);
        let config = self.sweep.compose_point(&point)?;
        if !self.configs.iter().any(|c| c.data == config.data) {
            if let Err(e) = crate::train::dataset::prepare(&config, self.reporter) {
                self.reporter.warn(format!("data of point {index}: {e}"));
            }
        }
        let proposal = Proposal {
            index,
            how: how.clone(),
            finished: history
                .iter()
                .filter(|o| o.outcome != Outcome::Running)
                .count(),
            running: history
                .iter()
                .filter(|o| o.outcome == Outcome::Running)
                .count(),
        };
        self.record.add_point(&point, &proposal)?;
        self.reporter.note(format!("#{index} proposed: {how}"));
        self.points.push(point.clone());
        self.configs.push(config);
        self.live.push(index);
        Ok(Some(Task {
            index,
            resume: None,
            point,
        }))
    }

    fn ended(&mut self, index: usize) -> Result<(), SweepError> {
        self.live.retain(|&i| i != index);
        let state = state_of(self.sweep, self.points.len(), index)?;
        self.results.ended(&state)
    }

    fn total(&self) -> usize {
        self.total
    }

    fn points(&self) -> Vec<Point> {
        self.points.clone()
    }
}
