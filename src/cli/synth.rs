//! `esx synth OUT [--kind fluo|dic] [--sequences N] [--frames N] [--size N] [--seed S]
//! [--3d [--depth N] [--anisotropy A]]`.

use std::path::PathBuf;

use anyhow::bail;
use esx::config::{SynthConfig, SynthKind};
use esx::data::synth_3d::{synthesize_3d, Synth3dSpec};
use esx::progress::Reporter;

use super::{parse_anisotropy, parse_enum};

/// Write a synthetic Cell Tracking Challenge dataset with gold-truth masks
#[derive(clap::Args)]
pub struct Args {
    /// Output dataset folder
    pub out: PathBuf,
    /// fluo (fluorescence, uint16) or dic (relief shading, uint8); 3D is fluo
    #[arg(long, default_value = "fluo", value_parser = parse_enum::<SynthKind>)]
    pub kind: SynthKind,
    #[arg(long, default_value_t = 2)]
    pub sequences: usize,
    /// Frames per sequence
    #[arg(long, default_value_t = 8)]
    pub frames: usize,
    /// Image width and height [default: 256, 128 with --3d]
    #[arg(long)]
    pub size: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// 3D stacks of nuclei (ZYX, Fluo-N3DH-like) with label stacks
    #[arg(long = "3d")]
    pub three_d: bool,
    /// Planes per stack (with --3d)
    #[arg(long, default_value_t = 32, requires = "three_d")]
    pub depth: usize,
    /// z spacing over xy spacing (with --3d), written in the stacks' metadata
    #[arg(long, default_value_t = 2.0, value_parser = parse_anisotropy, requires = "three_d", allow_negative_numbers = true)]
    pub anisotropy: f64,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let reporter = Reporter::terminal(args.quiet);
    if args.three_d {
        return exec_3d(&args, &reporter);
    }
    let spec = SynthConfig {
        kind: args.kind,
        sequences: args.sequences,
        frames: args.frames,
        size: args.size.unwrap_or(256),
        seed: args.seed,
    };
    let mut config = esx::config::Config::default();
    config.data.synthetic = Some(spec.clone());
    config.validate()?;
    let written = esx::data::synth::synthesize(&args.out, &spec, &reporter)?;
    let what = format!(
        "{} sequences × {} frames of {}×{}",
        spec.sequences, spec.frames, spec.size, spec.size
    );
    say(written, &what, &args);
    Ok(())
}

fn say(written: bool, what: &str, args: &Args) {
    if written {
        println!("wrote {what} to {}", args.out.display());
    } else {
        println!("{} already holds this dataset", args.out.display());
    }
}

fn exec_3d(args: &Args, reporter: &Reporter) -> anyhow::Result<()> {
    if args.kind != SynthKind::Fluo {
        bail!("--kind dic: 3D stacks are fluorescence only (--kind fluo)");
    }
    let spec = Synth3dSpec {
        sequences: args.sequences,
        frames: args.frames,
        depth: args.depth,
        size: args.size.unwrap_or(128),
        anisotropy: args.anisotropy,
        seed: args.seed,
    };
    if spec.size < 32 || spec.depth < 8 || spec.frames == 0 || !(1..=99).contains(&spec.sequences) {
        bail!(
            "size {} depth {} frames {} sequences {}: need size ≥ 32, depth ≥ 8, frames ≥ 1 and 1–99 sequences",
            spec.size,
            spec.depth,
            spec.frames,
            spec.sequences
        );
    }
    let written = synthesize_3d(&args.out, &spec, reporter)?;
    let what = format!(
        "{} sequences × {} stacks of {}×{}×{} (anisotropy {})",
        spec.sequences, spec.frames, spec.depth, spec.size, spec.size, spec.anisotropy
    );
    say(written, &what, args);
    Ok(())
}
