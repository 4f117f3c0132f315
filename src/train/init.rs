//! Fine-tuning: a new run's network starting from another run's weights or
//! from a model file (`init`), with named parts of it frozen
//! (`train.freeze`). Both are checked before the run is recorded; the run
//! records where its weights came from (its lineage).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Var};

use super::TrainError;
use crate::config::Config;
use crate::model::import::{read_model_file, ModelFile};
use crate::model::{BranchedErfnet, Weights};
use crate::store::query::read_run;
use crate::store::select::resolve_run;
use crate::store::{checkpoint_file, RunWriter};

/// Params under which a run keeps where its weights started.
pub const INIT_SOURCE: &str = "init.source";
pub const INIT_SHA256: &str = "init.sha256";
pub const INIT_RUN: &str = "init.run";
pub const INIT_RUN_DIR: &str = "init.run_dir";

/// The weights a new run starts from.
pub struct InitWeights {
    pub file: ModelFile,
    /// The run they came from (its id and folder), where `init` named a run.
    pub run: Option<(String, PathBuf)>,
}

impl InitWeights {
    /// Records the lineage with the new run: params and an `init` event.
    pub fn record(&self, writer: &mut RunWriter) -> Result<(), TrainError> {
        let text = |s: String| toml::Value::String(s);
        let source = std::fs::canonicalize(&self.file.path).unwrap_or(self.file.path.clone());
        writer.set_param(INIT_SOURCE, &text(source.display().to_string()))?;
        writer.set_param(INIT_SHA256, &text(self.file.sha256.clone()))?;
        let from = match &self.run {
            Some((id, dir)) => {
                writer.set_param(INIT_RUN, &text(id.clone()))?;
                let dir = std::fs::canonicalize(dir).unwrap_or(dir.clone());
                writer.set_param(INIT_RUN_DIR, &text(dir.display().to_string()))?;
                format!("run {id} ({})", source.display())
            }
            None => format!("{} ({} file)", source.display(), self.file.format.name()),
        };
        writer.log_event(
            "init",
            &format!("weights from {from}, sha256 {}", self.file.sha256),
        )?;
        Ok(())
    }
}

/// `init` and `train.freeze` of a new run, checked against the network its
/// config builds: the weights to start from (None without `init`).
pub fn resolve_init(cfg: &Config, runs_root: &Path) -> Result<Option<InitWeights>, TrainError> {
    let reference = Weights::new(DType::F32, &Device::Cpu);
    BranchedErfnet::new(&reference, cfg.model.n_sigma, 0)?;
    check_freeze(&cfg.train.freeze, &reference)?;
    let Some(arg) = Some(cfg.init.as_str()).filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let bad = |why: String| TrainError::Init(format!("init = {arg:?}: {why}"));
    let (path, run) = if Path::new(arg).is_file() {
        (PathBuf::from(arg), None)
    } else {
        let dir = resolve_run(arg, runs_root)
            .map_err(|e| bad(format!("no model file of that name, and {e}")))?;
        let info = read_run(&dir)?;
        let checkpoint = ["best", "last"]
            .iter()
            .map(|w| checkpoint_file(&dir, w))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                bad(format!(
                    "run {} has no checkpoint (it ended before its first epoch)",
                    info.id
                ))
            })?;
        (checkpoint, Some((info.id, dir)))
    };
    let file = read_model_file(&path).map_err(|e| bad(e.to_string()))?;
    // What the file is (a 3D model, other input channels) before how it
    // differs from this config's network.
    file.n_sigma().map_err(|e| bad(e.to_string()))?;
    file.check_against(&reference).map_err(|e| {
        bad(format!(
            "{e} (the config's model.n_sigma is {})",
            cfg.model.n_sigma
        ))
    })?;
    Ok(Some(InitWeights { file, run }))
}

/// Every `train.freeze` entry names a part of the network, and something
/// is left to train.
fn check_freeze(freeze: &[String], weights: &Weights) -> Result<(), TrainError> {
    let names: Vec<String> = weights.trainable().into_iter().map(|(n, _)| n).collect();
    for part in freeze {
        if !names.iter().any(|n| in_part(n, part)) {
            return Err(TrainError::Init(format!(
                "train.freeze: {part:?} names no part of the network (parts: \"encoder\", \"decoders.0\" (offsets and sigma), \"decoders.1\" (seeds), or any prefix of a tensor name such as \"encoder.layers.3\")"
            )));
        }
    }
    if !freeze.is_empty() && names.iter().all(|n| freeze.iter().any(|p| in_part(n, p))) {
        return Err(TrainError::Init(
            "train.freeze covers the whole network: nothing would train".into(),
        ));
    }
    Ok(())
}

fn in_part(name: &str, part: &str) -> bool {
    let part = part.trim_end_matches('.');
    name == part
        || name
            .strip_prefix(part)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The parameters the optimiser updates: all but the frozen parts'.
pub fn unfrozen(weights: &Weights, freeze: &[String]) -> Vec<(String, Var)> {
    weights
        .trainable()
        .into_iter()
        .filter(|(n, _)| !freeze.iter().any(|p| in_part(n, p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Weights {
        let w = Weights::new(DType::F32, &Device::Cpu);
        BranchedErfnet::new(&w, 2, 0).unwrap();
        w
    }

    #[test]
    fn parts_are_whole_name_segments() {
        assert!(in_part("encoder.layers.3.bn1.weight", "encoder"));
        assert!(in_part("encoder.layers.3.bn1.weight", "encoder.layers.3"));
        assert!(in_part("encoder.layers.3.bn1.weight", "encoder.layers.3."));
        assert!(!in_part("encoder.layers.30.bn1.weight", "encoder.layers.3"));
        assert!(!in_part("decoders.0.output_conv.bias", "decoders.1"));
    }

    #[test]
    fn freezing_the_encoder_leaves_the_decoders_to_train() {
        let w = net();
        let all = w.trainable().len();
        let free = unfrozen(&w, &["encoder".into()]);
        assert!(!free.is_empty() && free.len() < all);
        assert!(free.iter().all(|(n, _)| n.starts_with("decoders.")));
        assert_eq!(unfrozen(&w, &[]).len(), all);
    }

    #[test]
    fn a_freeze_naming_nothing_or_everything_is_refused() {
        let w = net();
        let e = check_freeze(&["encodr".into()], &w)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"encodr\" names no part"), "{e}");
        let e = check_freeze(&["encoder".into(), "decoders".into()], &w)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nothing would train"), "{e}");
        check_freeze(&["decoders.1".into()], &w).unwrap();
    }
}
