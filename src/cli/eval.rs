//! `esx eval RUN DATASET [--sequence NN…] [--tune]`: AP, matched IoU and SEG
//! on a CTC dataset's annotated frames, recorded with the run.

use std::path::PathBuf;

use esx::config::Annotations;
use esx::data::prepare::all_sequences;
use esx::infer::evaluate::{annotated_frames, evaluate, record_test};
use esx::infer::tune::{tune_source, TuneFrames};
use esx::progress::Reporter;

use super::model_args::ModelArgs;
use super::{parse_enum, print_json};

/// Score a run on a CTC dataset (AP@0.5…0.9, matched IoU, SEG) and record it
#[derive(clap::Args)]
pub struct Args {
    /// A run (id, prefix or directory), or a checkpoint file (then nothing is recorded)
    pub model: String,
    /// The dataset folder (holding 01/, 01_GT/, …)
    pub dataset: PathBuf,
    /// Sequences to score (repeat or comma separate; default: every NN folder)
    #[arg(long = "sequence", value_delimiter = ',', value_name = "NN")]
    pub sequences: Vec<String>,
    /// Masks to score against: GT, ST or both
    #[arg(long, default_value = "GT", value_parser = parse_enum::<Annotations>)]
    pub annotations: Annotations,
    /// First tune the clustering (and TTA) on the run's validation frames
    /// and record it with the run, as `esx tune` does
    #[arg(long, conflicts_with_all = ["fg_thresh", "seed_thresh", "min_size", "tta", "no_tta"])]
    pub tune: bool,
    #[command(flatten)]
    pub model_args: ModelArgs,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let reporter = Reporter::terminal(args.model_args.quiet || args.json);
    let mut source = args.model_args.source(&args.model)?;
    let mut tuned = None;
    if args.tune {
        if source.run_dir.is_none() {
            anyhow::bail!("--tune needs a run (its validation frames), not a bare checkpoint");
        }
        let device = esx::device::open(&source.config.device, source.config.train.precision)?;
        let tuning = tune_source(
            &source,
            &device,
            source.config.tune.objective,
            source.config.tune.tta,
            TuneFrames::Validation,
            &reporter,
        )?;
        let best = tuning.best;
        best.apply(&mut source.config.cluster);
        source.tuned_tta = Some(best.tta);
        if !args.json {
            println!("{}", esx::view::tuning(&tuning));
        }
        tuned = Some(tuning);
    }
    let sequences = if args.sequences.is_empty() {
        all_sequences(&args.dataset)?
    } else {
        args.sequences.clone()
    };
    let frames = annotated_frames(&args.dataset, &sequences, args.annotations)?;
    let segmenter = args.model_args.segmenter(&source)?;
    let scores = evaluate(&segmenter, &frames, &reporter)?;
    let context = serde_json::json!({
        "dataset": args.dataset,
        "sequences": sequences,
        "annotations": args.annotations,
        "checkpoint": source.checkpoint,
        "cluster": source.config.cluster,
        "tta": args.model_args.tta_for(&source),
    });
    if let Some(dir) = &source.run_dir {
        record_test(dir, &scores, context.clone())?;
    } else {
        reporter.note("a bare checkpoint: the scores are not recorded in any run");
    }
    if args.json {
        let mut out = context;
        out["tuned"] = serde_json::to_value(&tuned)?;
        out["scores"] = serde_json::to_value(&scores)?;
        return print_json(&out);
    }
    print!("{}", esx::view::scores(&scores));
    Ok(())
}
