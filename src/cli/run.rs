//! `esx run FILE [OVERRIDES…]` or `esx run --resume RUN`: train and record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use esx::progress::Reporter;
use esx::store::query::{read_run, RunInfo};
use esx::store::select::resolve_run;
use esx::store::{checkpoint_file, RunStatus};
use esx::sweep::prune::SweepJudge;
use esx::sweep::{Search, SweepRecord};
use esx::train::slurm_job::SlurmJob;
use esx::train::{self, Interrupt, Start};

use super::{parse_overrides, print_json, RunsDir};

/// Train an EmbedSeg model, recording everything in the run store
#[derive(clap::Args)]
pub struct Args {
    /// Experiment file (TOML)
    #[arg(required_unless_present = "resume")]
    pub file: Option<PathBuf>,
    /// Overrides: key=value, +key=value, ++key=value, ~key, group=option
    pub overrides: Vec<String>,
    #[command(flatten)]
    pub runs: RunsDir,
    /// Continue a run from its last checkpoint (id, prefix or directory)
    #[arg(long, value_name = "RUN", conflicts_with = "file")]
    pub resume: Option<String>,
    /// No progress bar or per-epoch lines
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    /// The sweep folder this run belongs to (set by `esx sweep`)
    #[arg(
        long,
        value_name = "DIR",
        requires = "point",
        conflicts_with = "resume",
        hide = true
    )]
    pub sweep: Option<PathBuf>,
    /// The sweep point this run trains (set by `esx sweep`)
    #[arg(long, value_name = "N", requires = "sweep", hide = true)]
    pub point: Option<usize>,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let reporter = Reporter::terminal(args.quiet || args.json);
    let interrupt = Interrupt::install()?;
    let slurm = SlurmJob::current();
    let (start, judge) = match (&args.resume, &args.file) {
        (Some(run), _) => {
            let dir = resolve_run(run, &args.runs.runs)?;
            let judge = resumed_judge(&dir);
            let start = Start::Resume {
                dir,
                requeued: false,
            };
            (start, judge)
        }
        (None, Some(file)) => {
            let parent = args.sweep.as_ref().unwrap_or(&args.runs.runs);
            match slurm.as_ref().and_then(|job| job.continued_run(parent)) {
                Some(previous) => match continue_requeued(&previous, &reporter)? {
                    Requeued::Continue(start) => (start, resumed_judge(&previous.dir)),
                    Requeued::Ended => return Ok(ExitCode::SUCCESS),
                    Requeued::Afresh => new_run(&args, file)?,
                },
                None => new_run(&args, file)?,
            }
        }
        (None, None) => anyhow::bail!("give an experiment file or --resume RUN"),
    };
    let judge = judge.as_ref().map(|j| j as &dyn train::EpochJudge);
    let result = train::run(start, &reporter, &interrupt, judge)?;
    if let (RunStatus::Interrupted, Some(job)) = (result.status, &slurm) {
        let why = if interrupt.time_limit() {
            Some("time limit")
        } else if interrupt.terminated() && job.preempted() {
            Some("preempted")
        } else {
            None
        };
        if let Some(why) = why {
            match job.requeue(&result.dir, why) {
                Ok(what) => reporter.note(format!("{what}: the run continues when it restarts")),
                Err(why) => reporter.warn(why),
            }
        }
    }
    if args.json {
        print_json(&result)?;
    } else {
        print!("{}", esx::view::run_summary(&result));
    }
    Ok(match result.status {
        RunStatus::Interrupted => ExitCode::from(130),
        _ => ExitCode::SUCCESS,
    })
}

/// A new run from the experiment file (in its sweep, with its pruner).
fn new_run(args: &Args, file: &Path) -> anyhow::Result<(Start, Option<SweepJudge>)> {
    let overrides = parse_overrides(&args.overrides)?;
    let composed = esx::config::compose(file, &overrides, false)?;
    let mut judge = None;
    let (parent, prefix, sweep) = match (&args.sweep, args.point) {
        (Some(dir), Some(point)) => {
            let membership = SweepRecord::membership(dir, point)?;
            judge = pruner(dir, &membership.id, point, SweepRecord::search(dir)?);
            (dir.clone(), Some(point.to_string()), Some(membership))
        }
        _ => (args.runs.runs.clone(), None, None),
    };
    let start = Start::New {
        composed: Box::new(composed),
        experiment: file.display().to_string(),
        command: std::env::args().collect(),
        parent,
        prefix,
        sweep,
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

fn continue_requeued(previous: &RunInfo, reporter: &Reporter) -> anyhow::Result<Requeued> {
    match previous.status {
        RunStatus::Completed | RunStatus::Pruned => {
            reporter.note(format!(
                "run {} of this job ended {} before the job was requeued",
                previous.id,
                previous.status.as_str()
            ));
            Ok(Requeued::Ended)
        }
        RunStatus::Failed => anyhow::bail!(
            "run {} of this job failed before the job was requeued: {}",
            previous.id,
            previous.error.as_deref().unwrap_or("no error recorded")
        ),
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

/// The pruner of a sweep's run, where its search prunes.
fn pruner(dir: &Path, id: &str, point: usize, search: Option<Search>) -> Option<SweepJudge> {
    search
        .filter(|s| !s.pruning.is_none())
        .map(|search| SweepJudge {
            sweep_dir: dir.to_path_buf(),
            sweep_id: id.to_string(),
            index: point,
            search,
        })
}

/// A resumed run of a pruning sweep is judged as before; a pruned run that
/// a user continues by hand is not (they chose to override the pruner).
fn resumed_judge(dir: &Path) -> Option<SweepJudge> {
    let info = read_run(dir).ok()?;
    if info.status == RunStatus::Pruned {
        return None;
    }
    let (id, index) = (info.sweep_id?, usize::try_from(info.sweep_index?).ok()?);
    let sweep_dir = dir.parent()?;
    pruner(sweep_dir, &id, index, SweepRecord::search(sweep_dir).ok()?)
}
