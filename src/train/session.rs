//! A run's lifecycle, in one room: a new run (in a sweep or not), a resumed
//! one, or the run a requeued Slurm job trained before; the checks each
//! needs; the device opened once; training; the run's end recorded whatever
//! happens once it is recorded; and a run that a time limit or preemption
//! stopped requeuing its Slurm job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dataset::resolve_auto;
use super::init::resolve_init;
use super::metrics::{EpochObserver, EpochReport};
use super::policy::EpochJudge;
use super::signals::Interrupt;
use super::slurm_job::{self, SlurmJob};
use super::trainer::{train, Setting};
use super::TrainError;
use crate::config::{AutoSize, Composed, Config, Override, Select};
use crate::data::object_sizes::ObjectSizes;
use crate::data::DataError;
use crate::infer::source::{AUTO_CROP_SIZE, AUTO_MIN_SIZE};
use crate::infer::tune::{tune_source, TuneFrames};
use crate::infer::{InferError, ModelSource, Which};
use crate::progress::Reporter;
use crate::store::heartbeat::STALE_AFTER;
use crate::store::provenance::now;
use crate::store::query::{read_run, RunInfo};
use crate::store::select::resolve_run;
use crate::store::{
    checkpoint_file, remove_partial_checkpoints, NewRun, Outcome, RunStatus, RunWriter,
    SweepMembership,
};

/// What `esx run` was asked.
pub enum Request {
    /// A new run of an experiment file with overrides, under `runs` or, as
    /// point `point` of a sweep, in the sweep's folder.
    New {
        file: PathBuf,
        overrides: Vec<Override>,
        runs: PathBuf,
        sweep: Option<(PathBuf, usize)>,
        /// The command line, as recorded.
        command: Vec<String>,
    },
    /// Continue a run (id, prefix or directory under `runs`).
    Resume { run: String, runs: PathBuf },
}

/// What a run needs from the sweep it belongs to; the sweep layer, above
/// training, provides it.
pub trait Sweeps {
    /// The membership of point `index` of the sweep in `dir`.
    fn membership(&self, dir: &Path, index: usize) -> Result<SweepMembership, String>;
    /// The pruner of that point, where the sweep's search prunes.
    fn pruner(
        &self,
        dir: &Path,
        sweep_id: &str,
        index: usize,
    ) -> Result<Option<Box<dyn EpochJudge>>, String>;
}

/// No sweeps: runs outside any (tests, benchmarks).
pub struct NoSweeps;

impl Sweeps for NoSweeps {
    fn membership(&self, dir: &Path, _: usize) -> Result<SweepMembership, String> {
        Err(format!("{}: not a sweep", dir.display()))
    }
    fn pruner(&self, _: &Path, _: &str, _: usize) -> Result<Option<Box<dyn EpochJudge>>, String> {
        Ok(None)
    }
}

/// Who the session tells what.
pub struct Watchers<'a> {
    pub reporter: &'a Reporter,
    pub epochs: &'a dyn EpochObserver,
    pub interrupt: &'a Interrupt,
}

/// How a run went.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunResult {
    pub id: String,
    pub dir: PathBuf,
    pub status: RunStatus,
    pub epochs: u32,
    pub steps: u64,
    /// The measure the best checkpoint was chosen by, and its value.
    pub best: Option<(Select, f64)>,
    pub last: Option<EpochReport>,
}

/// What the session did.
pub enum Ended {
    Trained(Box<RunResult>),
    /// A requeued Slurm job found the run it trained already ended: nothing
    /// to do.
    Already,
}

/// A new run, or a run to continue (resolved from a `Request`).
enum Start {
    New {
        composed: Box<Composed>,
        experiment: String,
        command: Vec<String>,
        /// The run directory goes in here (the runs root, or a sweep's folder).
        parent: PathBuf,
        /// A name prefix for the run directory (a sweep's point index).
        prefix: Option<String>,
        sweep: Option<SweepMembership>,
    },
    Resume {
        dir: PathBuf,
        /// Continued by the Slurm job that trained it, started again: the
        /// process that trained it has ended, whatever its heartbeat says.
        requeued: bool,
    },
}

/// Runs what was asked to its end: trained to the end, to an interruption
/// (requeuing the Slurm job where a time limit or preemption stopped it),
/// or to a failure. Once the run is recorded, every way out marks it
/// completed, interrupted, pruned or failed.
pub fn run(request: Request, sweeps: &dyn Sweeps, w: &Watchers) -> Result<Ended, TrainError> {
    let slurm = SlurmJob::current();
    let (start, judge) = match request {
        Request::Resume { run, runs } => {
            let dir = resolve_run(&run, &runs)?;
            let judge = resumed_pruner(sweeps, &dir);
            (
                Start::Resume {
                    dir,
                    requeued: false,
                },
                judge,
            )
        }
        Request::New {
            file,
            overrides,
            runs,
            sweep,
            command,
        } => {
            let parent = sweep.as_ref().map_or(&runs, |(dir, _)| dir);
            match slurm.as_ref().and_then(|job| job.continued_run(parent)) {
                Some(previous) => match requeued(&previous, w.reporter)? {
                    Requeued::Continue(start) => (start, resumed_pruner(sweeps, &previous.dir)),
                    Requeued::Ended => return Ok(Ended::Already),
                    Requeued::Afresh => new_run(sweeps, &file, &overrides, runs, sweep, command)?,
                },
                None => new_run(sweeps, &file, &overrides, runs, sweep, command)?,
            }
        }
    };
    let result = train_to_end(start, judge.as_deref(), w)?;
    if let (RunStatus::Interrupted, Some(job)) = (result.status, &slurm) {
        let why = if w.interrupt.time_limit() {
            Some("time limit")
        } else if w.interrupt.terminated() && job.preempted() {
            Some("preempted")
        } else {
            None
        };
        if let Some(why) = why {
            match job.requeue(&result.dir, why) {
                Ok(what) => w
                    .reporter
                    .note(format!("{what}: the run continues when it restarts")),
                Err(why) => w.reporter.warn(why),
            }
        }
    }
    Ok(Ended::Trained(Box::new(result)))
}

/// A new run from the experiment file (in its sweep, with its pruner).
fn new_run(
    sweeps: &dyn Sweeps,
    file: &Path,
    overrides: &[Override],
    runs: PathBuf,
    sweep: Option<(PathBuf, usize)>,
    command: Vec<String>,
) -> Result<(Start, Option<Box<dyn EpochJudge>>), TrainError> {
    let composed = crate::config::compose(file, overrides, false)?;
    let mut judge = None;
    let (parent, prefix, membership) = match sweep {
        Some((dir, point)) => {
            let membership = sweeps.membership(&dir, point).map_err(TrainError::Search)?;
            judge = sweeps
                .pruner(&dir, &membership.id, point)
                .map_err(TrainError::Search)?;
            (dir, Some(point.to_string()), Some(membership))
        }
        None => (runs, None, None),
    };
    let start = Start::New {
        composed: Box::new(composed),
        experiment: file.display().to_string(),
        command,
        parent,
        prefix,
        sweep: membership,
    };
    Ok((start, judge))
}

/// What a requeued Slurm job does with the run it trained before.
enum Requeued {
    Continue(Start),
    /// The run had ended: nothing left to do.
    Ended,
    /// It stopped before its first checkpoint: the run starts over.
    Afresh,
}

fn requeued(previous: &RunInfo, reporter: &Reporter) -> Result<Requeued, TrainError> {
    match previous.status {
        RunStatus::Completed | RunStatus::Pruned | RunStatus::Imported => {
            reporter.note(format!(
                "run {} of this job ended {} before the job was requeued",
                previous.id,
                previous.status.as_str()
            ));
            Ok(Requeued::Ended)
        }
        RunStatus::Failed => Err(TrainError::Requeued(format!(
            "run {} of this job failed before the job was requeued: {}",
            previous.id,
            previous.error.as_deref().unwrap_or("no error recorded")
        ))),
        RunStatus::Interrupted | RunStatus::Crashed | RunStatus::Running => {
            if !checkpoint_file(&previous.dir, "last").is_file() {
                reporter.note(format!(
                    "this job was requeued; run {} stopped before its first checkpoint, so a new run starts",
                    previous.id
                ));
                return Ok(Requeued::Afresh);
            }
            reporter.note(format!(
                "this job was requeued: continuing run {} from its last checkpoint",
                previous.id
            ));
            Ok(Requeued::Continue(Start::Resume {
                dir: previous.dir.clone(),
                requeued: true,
            }))
        }
    }
}

/// A resumed run of a pruning sweep is judged as before; a pruned run that
/// a user continues by hand is not (they chose to override the pruner).
fn resumed_pruner(sweeps: &dyn Sweeps, dir: &Path) -> Option<Box<dyn EpochJudge>> {
    let info = read_run(dir).ok()?;
    if info.status == RunStatus::Pruned {
        return None;
    }
    let (id, index) = (info.sweep_id?, usize::try_from(info.sweep_index?).ok()?);
    sweeps.pruner(dir.parent()?, &id, index).ok().flatten()
}

/// Records the run (or claims and checks the one to resume), opens the
/// device once, trains, and records how it ended.
fn train_to_end(
    start: Start,
    judge: Option<&dyn EpochJudge>,
    w: &Watchers,
) -> Result<RunResult, TrainError> {
    let (config, mut writer, found) = match start {
        Start::New {
            composed,
            experiment,
            command,
            parent,
            prefix,
            sweep,
        } => {
            let dev = open(&composed.config)?;
            // The runs folder is checked before the data is read, so a
            // folder that cannot take the run is the one thing said.
            RunWriter::check_parent(&parent)?;
            // The weights to start from, and what to freeze: checked before
            // anything is recorded.
            let init = resolve_init(&composed.config, &parent)?;
            // "auto" sizes before the run is recorded: a dataset without
            // masks, or of 3D stacks, records nothing; any other data fault
            // fails the run on record, as it always has.
            let found = match resolve_auto(&composed.config, w.reporter) {
                Err(e) if e.records_nothing() => return Err(e.into()),
                found => found,
            };
            let new = NewRun {
                name: composed.config.name.clone(),
                config_toml: composed.to_toml(),
                overrides: composed.overrides.clone(),
                experiment: Some(experiment),
                command,
                sweep,
                journal: None,
            };
            let mut writer = RunWriter::create(&parent, prefix.as_deref(), &new)?;
            if let Some(i) = &init {
                if let Err(e) = i.record(&mut writer) {
                    writer.finish(Outcome::Failed(e.to_string()))?;
                    return Err(e);
                }
            }
            ((composed.config, dev), writer, Some((found, init)))
        }
        Start::Resume { dir, requeued } => {
            let (config, claim) = resumable(&dir, requeued)?;
            let dev = open(&config)?;
            ((config, dev), RunWriter::reopen(&dir, claim)?, None)
        }
    };
    let (found, init) = match found {
        Some((found, init)) => (Some(found), init),
        None => (None, None),
    };
    let (config, dev) = config;
    let resume = found.is_none();
    let dir = writer.dir().to_path_buf();
    let id = writer.id().to_string();
    let mut started = false;
    let trained = resolve_sizes(&config, found, &mut writer, w.reporter).and_then(|config| {
        let setting = Setting {
            cfg: &config,
            dev: &dev,
            resume,
            reporter: w.reporter,
            observer: w.epochs,
            interrupt: w.interrupt,
            judge,
            init: init.as_ref().map(|i| &i.file),
        };
        let done = train(&setting, &mut writer, &mut started)?;
        if !done.interrupted && !done.pruned && config.tune.after_training {
            tune_after_training(&config, &dev, &mut writer, w.reporter)?;
        }
        Ok(done)
    });
    let result = match trained {
        Err(e) if resume && !started => {
            // The resume failed before it changed anything (data, checkpoint):
            // the run keeps the status it had; the attempt is an event.
            writer.give_up_resume(&e.to_string())?;
            return Err(e);
        }
        other => other,
    };
    let (outcome, ret) = match result {
        Ok(done) => {
            let (status, outcome) = if done.interrupted {
                (RunStatus::Interrupted, Outcome::Interrupted)
            } else if done.pruned {
                (RunStatus::Pruned, Outcome::Pruned)
            } else {
                (RunStatus::Completed, Outcome::Completed)
            };
            (
                outcome,
                Ok(RunResult {
                    id,
                    dir,
                    status,
                    epochs: done.epochs,
                    steps: done.steps,
                    best: done.best,
                    last: done.last,
                }),
            )
        }
        Err(e) => (Outcome::Failed(e.to_string()), Err(e)),
    };
    writer.finish(outcome)?;
    ret
}

/// The config with its "auto" sizes made numbers: for a new run as
/// `found` from the dataset's objects (the numbers and the rule recorded
/// with it), for a resumed one (`found` None) as recorded (its crops were
/// cut at that size).
fn resolve_sizes(
    config: &Config,
    found: Option<Result<(Config, Option<ObjectSizes>), DataError>>,
    writer: &mut RunWriter,
    reporter: &Reporter,
) -> Result<Config, TrainError> {
    if found.is_none() {
        let info = read_run(writer.dir())?;
        let recorded = |key: &str| {
            info.params
                .get(key)
                .and_then(|p| p.num)
                .map(|v| AutoSize::Fixed(v as usize))
        };
        if let (Some(crop), Some(min)) = (recorded(AUTO_CROP_SIZE), recorded(AUTO_MIN_SIZE)) {
            let mut c = config.clone();
            c.data.crop_size = crop;
            c.cluster.min_size = min;
            return Ok(c);
        }
    }
    let (resolved, sizes) = match found {
        Some(found) => found?,
        None => resolve_auto(config, reporter)?,
    };
    let Some(sizes) = sizes else {
        return Ok(resolved);
    };
    // Both recorded (a number the config gave stays as given), so a resume
    // finds them.
    for (key, size) in [
        (AUTO_CROP_SIZE, resolved.data.crop_size),
        (AUTO_MIN_SIZE, resolved.cluster.min_size),
    ] {
        if let Some(n) = size.fixed() {
            writer.set_param(key, &toml::Value::Integer(n as i64))?;
        }
    }
    writer.log_event(
        "auto_sizes",
        &serde_json::json!({
            "rule": sizes.describe(config.data.crop_size.is_auto(), config.cluster.min_size.is_auto()),
            "sizes": sizes,
            "crop_size": resolved.data.crop_size,
            "min_size": resolved.cluster.min_size,
        })
        .to_string(),
    )?;
    Ok(resolved)
}

/// `tune.after_training`: the post-processing tuned on the validation
/// frames with the best checkpoint, before the run is marked completed. A
/// run without validation frames is not tuned (an event says why); any
/// other failure to tune fails the run.
fn tune_after_training(
    config: &Config,
    dev: &candle_core::Device,
    writer: &mut RunWriter,
    reporter: &Reporter,
) -> Result<(), TrainError> {
    writer.flush()?;
    let dir = writer.dir().to_path_buf();
    let source = ModelSource::resolve(&dir.to_string_lossy(), &dir, Which::Best)?;
    match tune_source(
        &source,
        dev,
        config.tune.objective,
        config.tune.tta,
        TuneFrames::Validation,
        reporter,
    ) {
        Ok(t) => {
            reporter.note(format!(
                "tuned on {} validation frames: {} {:.4} → {:.4} (seed_thresh {:.2}, fg_thresh {:.2}, min_size {}, TTA {}){}",
                t.frames,
                t.objective.name(),
                t.before.objective(t.objective),
                t.best.objective(t.objective),
                t.best.seed_thresh,
                t.best.fg_thresh,
                t.best.min_size,
                if t.best.tta { "on" } else { "off" },
                t.view_agreement
                    .map(|a| format!("; TTA views agree at F1 {a:.4}"))
                    .unwrap_or_default()
            ));
            Ok(())
        }
        Err(InferError::NoFrames(why)) => {
            writer.log_event("tune_skipped", &why)?;
            reporter.note(format!("not tuned: {why}"));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The device the config names, opened once for the whole run, and the
/// CPU thread pool sized.
fn open(config: &Config) -> Result<candle_core::Device, TrainError> {
    let dev = crate::device::open(&config.device, config.train.precision)?;
    crate::device::set_threads(config.threads)?;
    Ok(dev)
}

/// Claims the run to resume, then checks it under the claim (of two resumes
/// started together, one trains and the other is told who does): not
/// running elsewhere, a checkpoint to continue from, its recorded config.
fn resumable(dir: &Path, requeued: bool) -> Result<(Config, crate::store::Claim), TrainError> {
    let claim = if requeued {
        slurm_job::claim_requeued(dir, Duration::from_secs(180))?
    } else {
        RunWriter::claim(dir)?
    };
    remove_partial_checkpoints(dir);
    let info = read_run(dir)?;
    let resume_err = |why: String| TrainError::Resume {
        dir: dir.to_path_buf(),
        why,
    };
    if info.status == RunStatus::Running && !requeued {
        // Its claim did not stop us: it trains on a host whose locks this
        // filesystem does not share. Its heartbeat says it lives.
        let ago = info.heartbeat.map_or(0.0, |b| (now() - b).max(0.0));
        return Err(resume_err(format!(
            "it is running on {} (pid {}, heartbeat {ago:.0} s ago); it can be \
             resumed once it ends or its heartbeat is {:.0} min old",
            info.host,
            info.pid,
            STALE_AFTER / 60.0
        )));
    }
    if info.status == RunStatus::Imported {
        return Err(resume_err(
            "it was imported, not trained here: nothing to resume (start a run from it with init=RUN)".into(),
        ));
    }
    if !checkpoint_file(dir, "last").is_file() {
        return Err(resume_err(
            "it has no checkpoint (it ended before its first epoch)".into(),
        ));
    }
    let config: Config = toml::from_str(&info.config)
        .map_err(|e| resume_err(format!("its recorded config: {e}")))?;
    Ok((config, claim))
}
