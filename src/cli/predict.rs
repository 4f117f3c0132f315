//! `esx predict RUN|CHECKPOINT IMAGE_OR_DIR… --out DIR`: CTC result masks.

use std::path::PathBuf;

use esx::infer::files::{expand_inputs, predict_files};
use esx::progress::Reporter;

use super::model_args::ModelArgs;
use super::print_json;

/// Segment images with a trained model: DIR/maskNNN.tif (uint16 labels)
#[derive(clap::Args)]
pub struct Args {
    /// A run (id, prefix or directory) or a checkpoint file (.safetensors)
    pub model: String,
    /// Images (.tif) or folders of them
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder
    #[arg(long, short)]
    pub out: PathBuf,
    /// Also write colour overlays, DIR/maskNNN.png
    #[arg(long)]
    pub png: bool,
    #[command(flatten)]
    pub model_args: ModelArgs,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let reporter = Reporter::terminal(args.model_args.quiet || args.json);
    let source = args.model_args.source(&args.model)?;
    let segmenter = args.model_args.segmenter(&source)?;
    let images = expand_inputs(&args.inputs)?;
    let done = predict_files(&segmenter, &images, &args.out, args.png, &reporter)?;
    if args.json {
        return print_json(&serde_json::json!({
            "checkpoint": source.checkpoint,
            "cluster": source.config.cluster,
            "tta": segmenter.options.tta,
            "images": done,
        }));
    }
    print!("{}", esx::view::predictions(&source.checkpoint, &done));
    Ok(())
}
