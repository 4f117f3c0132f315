//! `esx run FILE [OVERRIDES…]` or `esx run --resume RUN`: train and record.

use std::path::PathBuf;
use std::process::ExitCode;

use esx::progress::Reporter;
use esx::store::RunStatus;
use esx::sweep::member::RecordedSweeps;
use esx::train::{self, Ended, EpochObserver, EpochReport, Interrupt, Request, Watchers};

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
    let request = match (args.resume, args.file) {
        (Some(run), _) => Request::Resume {
            run,
            runs: args.runs.runs,
        },
        (None, Some(file)) => Request::New {
            overrides: parse_overrides(&args.overrides)?,
            file,
            runs: args.runs.runs,
            sweep: args.sweep.zip(args.point),
            command: std::env::args().collect(),
        },
        (None, None) => anyhow::bail!("give an experiment file or --resume RUN"),
    };
    let watchers = Watchers {
        reporter: &reporter,
        epochs: &EpochLines(&reporter),
        interrupt: &interrupt,
    };
    let result = match train::run(request, &RecordedSweeps, &watchers)? {
        Ended::Trained(result) => *result,
        Ended::Already => return Ok(ExitCode::SUCCESS),
    };
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

/// Each epoch's line on the terminal (quiet with the reporter).
struct EpochLines<'a>(&'a Reporter);

impl EpochObserver for EpochLines<'_> {
    fn epoch_ended(&self, report: &EpochReport, epochs: u32) {
        self.0.note(esx::view::epoch_line(report, epochs));
    }
}
