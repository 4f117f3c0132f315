//! `esx tune RUN`: search the clustering's thresholds, minimum size and
//! test-time augmentation on the run's validation frames, and record the
//! best with the run (predict and eval use it).

use esx::config::TuneObjective;
use std::path::PathBuf;

use esx::data::prepare::all_sequences;
use esx::infer::evaluate::annotated_frames;
use esx::infer::tune::{tune_source, TuneFrames};
use esx::infer::{ModelSource, Which};
use esx::progress::Reporter;

use super::{print_json, RunsDir};

/// Tune a run's post-processing on its validation frames and record it
#[derive(clap::Args)]
pub struct Args {
    /// A run (id, prefix or directory)
    pub run: String,
    #[command(flatten)]
    pub runs: RunsDir,
    /// What the search maximises (default: the run's tune.objective)
    #[arg(long, value_enum)]
    pub objective: Option<TuneObjective>,
    /// Do not try test-time augmentation (default: the run's tune.tta)
    #[arg(long)]
    pub no_tta: bool,
    /// Tune on the annotated frames of this CTC dataset instead of the run's
    /// validation frames (an imported model has none); never your test set
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// With --data: these sequences (default: all)
    #[arg(long, value_delimiter = ',', requires = "data")]
    pub sequences: Vec<String>,
    /// Which of the run's checkpoints: best (the default, falling back to last) or last
    #[arg(long, default_value = "best", value_parser = super::model_args::parse_which)]
    pub checkpoint: Which,
    /// Device (cpu, cuda:N); default the run's
    #[arg(long)]
    pub device: Option<String>,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let reporter = Reporter::terminal(args.quiet || args.json);
    let mut source = ModelSource::resolve(&args.run, &args.runs.runs, args.checkpoint)?;
    if source.run_dir.is_none() {
        anyhow::bail!(
            "{}: tuning needs a run (its validation frames), not a checkpoint file",
            args.run
        );
    }
    if let Some(d) = &args.device {
        source.config.device = d.clone();
    }
    let device = esx::device::open(&source.config.device, source.config.train.precision)?;
    let objective = args.objective.unwrap_or(source.config.tune.objective);
    let try_tta = source.config.tune.tta && !args.no_tta;
    let on = match &args.data {
        None => TuneFrames::Validation,
        Some(dir) => {
            let sequences = if args.sequences.is_empty() {
                all_sequences(dir)?
            } else {
                args.sequences.clone()
            };
            TuneFrames::Given {
                frames: annotated_frames(dir, &sequences, source.config.data.annotations)?,
                from: dir.display().to_string(),
            }
        }
    };
    let tuning = tune_source(&source, &device, objective, try_tta, on, &reporter)?;
    if args.json {
        return print_json(&tuning);
    }
    print!("{}", esx::view::tuning(&tuning));
    Ok(())
}
