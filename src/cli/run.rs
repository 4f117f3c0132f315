//! `esx run FILE [OVERRIDES…]` or `esx run --resume RUN`: train and record.

use std::path::PathBuf;
use std::process::ExitCode;

use esx::progress::Reporter;
use esx::store::query::resolve_run;
use esx::store::RunStatus;
use esx::sweep::SweepRecord;
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
    let start = match (&args.resume, &args.file) {
        (Some(run), _) => Start::Resume {
            dir: resolve_run(run, &args.runs.runs)?,
        },
        (None, Some(file)) => {
            let overrides = parse_overrides(&args.overrides)?;
            let composed = esx::config::compose(file, &overrides, false)?;
            let (parent, prefix, sweep) = match (&args.sweep, args.point) {
                (Some(dir), Some(point)) => (
                    dir.clone(),
                    Some(point.to_string()),
                    Some(SweepRecord::membership(dir, point)?),
                ),
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
    let result = train::run(start, &reporter, &interrupt)?;
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
