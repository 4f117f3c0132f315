//! Checkpoints: the model's tensors under EmbedSeg's names (a PyTorch
//! state_dict converted to safetensors loads as is), the optimiser state,
//! and where training stands, as safetensors metadata.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::adam::Adam;
use crate::model::weights::Staged;
use crate::model::{ModelError, Weights};

const POSITION_KEY: &str = "esx.position";

/// Where training stands: resuming continues from here.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// The epoch in progress (0-based).
    pub epoch: u32,
    /// The next batch of that epoch.
    pub batch: usize,
    /// Training steps taken so far.
    pub step: u64,
    /// The best of the run's `train.select` measure so far, oriented so
    /// that higher is better (the loss negated); None: none yet.
    #[serde(default)]
    pub best: Option<f64>,
    /// Where checkpoints before `train.select` kept the best validation
    /// IoU (-1: none); read only.
    #[serde(default = "no_best_iou", skip_serializing)]
    pub best_iou: f64,
    /// The running sums of the epoch in progress.
    pub sums: EpochSums,
}

fn no_best_iou() -> f64 {
    -1.0
}

impl Default for Position {
    fn default() -> Position {
        Position {
            epoch: 0,
            batch: 0,
            step: 0,
            best: None,
            best_iou: no_best_iou(),
            sums: EpochSums::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EpochSums {
    pub loss: f64,
    pub inst: f64,
    pub var: f64,
    pub seed: f64,
    pub batches: usize,
    pub images: usize,
    pub seconds: f64,
}

impl EpochSums {
    /// Adds one batch's loss terms.
    pub fn add(&mut self, terms: &crate::loss::LossValues, images: usize) {
        self.loss += terms.value;
        self.inst += terms.instance;
        self.var += terms.var;
        self.seed += terms.seed;
        self.batches += 1;
        self.images += images;
    }
}

pub fn save(
    path: &Path,
    weights: &Weights,
    optimiser: Option<&Adam>,
    position: &Position,
) -> Result<(), ModelError> {
    stage(path, weights, optimiser, position)?.commit()
}

/// The checkpoint `save` writes, not yet in place (see `Weights::stage`).
pub fn stage(
    path: &Path,
    weights: &Weights,
    optimiser: Option<&Adam>,
    position: &Position,
) -> Result<Staged, ModelError> {
    let extra = match optimiser {
        Some(o) => o.state()?,
        None => Vec::new(),
    };
    let meta = HashMap::from([(
        POSITION_KEY.to_string(),
        serde_json::to_string(position).expect("a position serialises"),
    )]);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::Checkpoint {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    }
    weights.stage(path, &extra, Some(meta))
}

/// Loads the model (and the optimiser state, if given) and returns the position.
pub fn load(
    path: &Path,
    weights: &Weights,
    optimiser: Option<&mut Adam>,
) -> Result<Position, ModelError> {
    let bad = |why: String| ModelError::Checkpoint {
        path: path.to_path_buf(),
        why,
    };
    weights.load(path)?;
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let position = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(POSITION_KEY))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    if let Some(opt) = optimiser {
        let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)?;
        opt.load_state(&tensors)?;
    }
    Ok(position)
}
