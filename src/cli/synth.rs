//! `esx synth OUT [--kind fluo|dic] [--sequences N] [--frames N] [--size N] [--seed S]`.

use std::path::PathBuf;

use esx::config::{SynthConfig, SynthKind};
use esx::progress::Reporter;

use super::parse_enum;

/// Write a synthetic Cell Tracking Challenge dataset with gold-truth masks
#[derive(clap::Args)]
pub struct Args {
    /// Output dataset folder
    pub out: PathBuf,
    /// fluo (fluorescence, uint16) or dic (relief shading, uint8)
    #[arg(long, default_value = "fluo", value_parser = parse_enum::<SynthKind>)]
    pub kind: SynthKind,
    #[arg(long, default_value_t = 2)]
    pub sequences: usize,
    /// Frames per sequence
    #[arg(long, default_value_t = 8)]
    pub frames: usize,
    /// Image width and height
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let spec = SynthConfig {
        kind: args.kind,
        sequences: args.sequences,
        frames: args.frames,
        size: args.size,
        seed: args.seed,
    };
    let mut config = esx::config::Config::default();
    config.data.synthetic = Some(spec.clone());
    config.validate()?;
    let written = esx::data::synth::synthesize(&args.out, &spec, &Reporter::terminal(args.quiet))?;
    if written {
        println!(
            "wrote {} sequences × {} frames of {}×{} to {}",
            spec.sequences,
            spec.frames,
            spec.size,
            spec.size,
            args.out.display()
        );
    } else {
        println!("{} already holds this dataset", args.out.display());
    }
    Ok(())
}
