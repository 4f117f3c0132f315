//! `esx import FILE`: record a model trained elsewhere (EmbedSeg's `.pth`
//! or a safetensors file) as a run that predict, eval, tune and `init` take.

use std::path::PathBuf;

use esx::infer::import::{import_model, ImportRequest};

use super::{print_json, RunsDir};

/// Import a trained model (EmbedSeg's .pth, or safetensors) as a run
#[derive(clap::Args)]
pub struct Args {
    /// The model file: EmbedSeg's checkpoint (e.g. best_iou_model.pth) or a
    /// safetensors file of the same tensor names
    pub file: PathBuf,
    /// The run's name (default: the file's name without its extension)
    #[arg(long)]
    pub name: Option<String>,
    /// Sigma channels (default: read from the file's output layer)
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub n_sigma: Option<u8>,
    #[command(flatten)]
    pub runs: RunsDir,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let imported = import_model(&ImportRequest {
        file: args.file,
        name: args.name,
        runs: args.runs.runs,
        n_sigma: args.n_sigma.map(usize::from),
        command: std::env::args().collect(),
    })?;
    if args.json {
        return print_json(&imported);
    }
    print!("{}", esx::view::imported(&imported));
    Ok(())
}
