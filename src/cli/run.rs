//! `esx run FILE [OVERRIDES…]` or `esx run --resume RUN`: train and record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use esx::progress::Reporter;
use esx::store::query::{read_run, resolve_run};
use esx::store::RunStatus;
use esx::sweep::prune::SweepJudge;
use esx::sweep::{Search, SweepRecord};
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
    let mut judge = None;
    let start = match (&args.resume, &args.file) {
        (Some(run), _) => {
            let dir = resolve_run(run, &args.runs.runs)?;
            judge = resumed_judge(&dir);
            Start::Resume { dir }
        }
        (None, Some(file)) => {
            let overrides = parse_overrides(&args.overrides)?;
            let composed = esx::config::compose(file, &overrides, false)?;
            let (parent, prefix, sweep) = match (&args.sweep, args.point) {
                (Some(dir), Some(point)) => {
                    let membership = SweepRecord::membership(dir, point)?;
                    judge = pruner(dir, &membership.id, point, SweepRecord::search(dir)?);
                    (dir.clone(), Some(point.to_string()), Some(membership))
                }
                _ => (args.runs.runs.clone(), None, None),
            };
            Start::New {
                composed: Box::new(composed),
                experiment: file.display().to_string(),
                command: std::env::args().collect(),
                parent,
                prefix,
                sweep,
            }
        }
        (None, None) => anyhow::bail!("give an experiment file or --resume RUN"),
    };
    let judge = judge.as_ref().map(|j| j as &dyn train::EpochJudge);
    let result = train::run(start, &reporter, &interrupt, judge)?;
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
