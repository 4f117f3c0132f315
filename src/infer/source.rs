//! What `esx predict` and `esx eval` run: a checkpoint and the config that
//! goes with it. A run gives its best checkpoint (else its last), its stored
//! config and any threshold tuned after training; a bare checkpoint file takes
//! its run's config when it lies in a run's `checkpoints/`, else the defaults.

use std::path::{Path, PathBuf};

use super::InferError;
use crate::config::Config;
use crate::store::query::read_run;
use crate::store::select::resolve_run;
use crate::store::{checkpoint_file, CHECKPOINTS};

/// The param under which `esx eval --tune` stores the tuned foreground threshold.
pub const TUNED_FG_THRESH: &str = "tuned.cluster.fg_thresh";

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
            let config = match run_dir {
                Some(d) => run_config(d)?,
                None => Config::default(),
            };
            return Ok(ModelSource {
                checkpoint: path.to_path_buf(),
                config,
                run_dir: run_dir.map(Path::to_path_buf),
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
        Ok(ModelSource {
            checkpoint,
            config: run_config(&dir)?,
            run_dir: Some(dir),
        })
    }
}

/// A run's stored config, with a tuned foreground threshold applied.
fn run_config(dir: &Path) -> Result<Config, InferError> {
    let info = read_run(dir)?;
    let mut config: Config = toml::from_str(&info.config).map_err(|e| InferError::RunConfig {
        dir: dir.to_path_buf(),
        why: e.to_string(),
    })?;
    if let Some(v) = info.params.get(TUNED_FG_THRESH).and_then(|p| p.num) {
        config.cluster.fg_thresh = v;
    }
    Ok(config)
}
