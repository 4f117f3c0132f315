//! What `esx predict` and `esx eval` run: a checkpoint and the config that
//! goes with it. A run gives its best checkpoint (else its last), its stored
//! config and any threshold tuned after training; a bare checkpoint file takes
//! its run's config when it lies in a run's `checkpoints/`, else the defaults.

use std::path::{Path, PathBuf};

use super::InferError;
use crate::config::{AutoSize, ClusterConfig, Config};
use crate::store::query::read_run;
use crate::store::select::resolve_run;
use crate::store::{checkpoint_file, CHECKPOINTS};

/// Params under which a run keeps what it was tuned to.
pub const TUNED_SEED_THRESH: &str = "tuned.cluster.seed_thresh";
pub const TUNED_FG_THRESH: &str = "tuned.cluster.fg_thresh";
pub const TUNED_MIN_SIZE: &str = "tuned.cluster.min_size";
pub const TUNED_TTA: &str = "tuned.tta";

/// Params under which a run keeps the numbers its "auto" sizes became.
pub const AUTO_CROP_SIZE: &str = "auto.data.crop_size";
pub const AUTO_MIN_SIZE: &str = "auto.cluster.min_size";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Best,
    Last,
}

#[derive(Clone, Debug)]
pub struct ModelSource {
    pub checkpoint: PathBuf,
    pub config: Config,
    /// The run the checkpoint belongs to, if any.
    pub run_dir: Option<PathBuf>,
    /// Whether tuning found test-time augmentation pays (None: not tuned).
    pub tuned_tta: Option<bool>,
    /// The run's clustering before any tuning (where tuning starts).
    pub untuned: ClusterConfig,
}

impl ModelSource {
    /// `arg` is a checkpoint file, a run directory, or a run id (prefix).
    pub fn resolve(arg: &str, runs_root: &Path, which: Which) -> Result<ModelSource, InferError> {
        let path = Path::new(arg);
        if path.is_file() {
            let run_dir = path
                .parent()
                .filter(|p| p.file_name().is_some_and(|n| n == CHECKPOINTS))
                .and_then(Path::parent)
                .filter(|d| d.join(crate::store::RUN_DB).is_file());
            let (config, tuned_tta, untuned) = match run_dir {
                Some(d) => run_config(d)?,
                None => (Config::default(), None, ClusterConfig::default()),
            };
            return Ok(ModelSource {
                checkpoint: path.to_path_buf(),
                config,
                run_dir: run_dir.map(Path::to_path_buf),
                tuned_tta,
                untuned,
            });
        }
        let dir = resolve_run(arg, runs_root)?;
        let order: &[&str] = match which {
            Which::Best => &["best", "last"],
            Which::Last => &["last"],
        };
        let checkpoint = order
            .iter()
            .map(|n| checkpoint_file(&dir, n))
            .find(|p| p.is_file())
            .ok_or_else(|| InferError::NoCheckpoint { dir: dir.clone() })?;
        let (config, tuned_tta, untuned) = run_config(&dir)?;
        Ok(ModelSource {
            checkpoint,
            config,
            run_dir: Some(dir),
            tuned_tta,
            untuned,
        })
    }
}

/// A run's stored config with what the run found applied: the numbers
/// its "auto" sizes became, then the post-processing it was tuned to; and
/// whether tuning chose TTA; and the clustering before tuning.
fn run_config(dir: &Path) -> Result<(Config, Option<bool>, ClusterConfig), InferError> {
    let info = read_run(dir)?;
    let mut config: Config = toml::from_str(&info.config).map_err(|e| InferError::RunConfig {
        dir: dir.to_path_buf(),
        why: e.to_string(),
    })?;
    let num = |key: &str| info.params.get(key).and_then(|p| p.num);
    let size = |key: &str| {
        num(key)
            .filter(|v| *v >= 0.0)
            .map(|v| AutoSize::Fixed(v as usize))
    };
    if let Some(v) = size(AUTO_CROP_SIZE) {
        config.data.crop_size = v;
    }
    if let Some(v) = size(AUTO_MIN_SIZE) {
        config.cluster.min_size = v;
    }
    let untuned = config.cluster.clone();
    if let Some(v) = num(TUNED_SEED_THRESH) {
        config.cluster.seed_thresh = v;
    }
    if let Some(v) = num(TUNED_FG_THRESH) {
        config.cluster.fg_thresh = v;
    }
    if let Some(v) = size(TUNED_MIN_SIZE) {
        config.cluster.min_size = v;
    }
    Ok((config, num(TUNED_TTA).map(|v| v != 0.0), untuned))
}
