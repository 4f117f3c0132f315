//! The flags `esx predict` and `esx eval` share: which model, how to predict,
//! which thresholds.

use esx::config::Config;
use esx::infer::{ModelSource, PredictOptions, Segmenter, Which};

use super::RunsDir;

#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    #[command(flatten)]
    pub runs: RunsDir,
    /// Which of a run's checkpoints: best (by train.select; the default,
    /// falling back to last) or last
    #[arg(long, default_value = "best", value_parser = parse_which)]
    pub checkpoint: Which,
    /// 8-fold test-time augmentation (4 rotations × flip); default: as the
    /// run was tuned (esx tune), else off
    #[arg(long, conflicts_with = "no_tta")]
    pub tta: bool,
    /// No test-time augmentation, even where tuning chose it
    #[arg(long)]
    pub no_tta: bool,
    /// Images larger than this (either side) are predicted in tiles of it
    #[arg(long, default_value_t = 1024, value_name = "PIXELS")]
    pub tile: usize,
    /// Overlap between tiles
    #[arg(long, default_value_t = 128, value_name = "PIXELS")]
    pub overlap: usize,
    /// Override the run's cluster.seed_thresh
    #[arg(long)]
    pub seed_thresh: Option<f64>,
    /// Override the run's cluster.fg_thresh (or the tuned one)
    #[arg(long)]
    pub fg_thresh: Option<f64>,
    /// Override the run's cluster.min_size
    #[arg(long)]
    pub min_size: Option<usize>,
    /// Device (cpu, cuda:N); default the run's
    #[arg(long)]
    pub device: Option<String>,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn parse_which(s: &str) -> Result<Which, String> {
    match s {
        "best" => Ok(Which::Best),
        "last" => Ok(Which::Last),
        _ => Err(format!("`{s}`: expected best or last")),
    }
}

impl ModelArgs {
    pub fn source(&self, target: &str) -> anyhow::Result<ModelSource> {
        let mut source = ModelSource::resolve(target, &self.runs.runs, self.checkpoint)?;
        self.apply(&mut source.config)?;
        Ok(source)
    }

    fn apply(&self, c: &mut Config) -> anyhow::Result<()> {
        if self.tile < 64 || self.overlap >= self.tile {
            anyhow::bail!(
                "--tile {} --overlap {}: tiles must be at least 64 pixels and larger than the overlap",
                self.tile,
                self.overlap
            );
        }
        if let Some(v) = self.seed_thresh {
            c.cluster.seed_thresh = v;
        }
        if let Some(v) = self.fg_thresh {
            c.cluster.fg_thresh = v;
        }
        if let Some(v) = self.min_size {
            c.cluster.min_size = esx::config::AutoSize::Fixed(v);
        }
        if let Some(d) = &self.device {
            c.device = d.clone();
        }
        for (key, v) in [
            ("--seed-thresh", c.cluster.seed_thresh),
            ("--fg-thresh", c.cluster.fg_thresh),
        ] {
            if !(0.0..=1.0).contains(&v) {
                anyhow::bail!("{key} {v}: a threshold lies in 0..1");
            }
        }
        Ok(())
    }

    /// TTA as asked, else as the run was tuned.
    pub fn tta_for(&self, source: &ModelSource) -> bool {
        self.tta || (!self.no_tta && source.tuned_tta == Some(true))
    }

    pub fn segmenter(&self, source: &ModelSource) -> anyhow::Result<Segmenter> {
        let device = esx::device::open(&source.config.device, source.config.train.precision)?;
        let options = PredictOptions {
            tta: self.tta_for(source),
            tile: self.tile,
            overlap: self.overlap,
        };
        Ok(Segmenter::load(
            &source.checkpoint,
            &source.config,
            options,
            &device,
        )?)
    }
}
