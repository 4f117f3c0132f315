//! BranchedERFNet (EmbedSeg's network) in candle, on custom CPU ops.

pub mod branched;
pub mod device_conv;
pub mod erfnet;
pub mod erfnet3d;
pub mod import;
pub mod layers;
pub mod layers3d;
pub mod ops;
pub mod pth;
pub mod weights;

use std::path::PathBuf;

pub use branched::BranchedErfnet;
pub use layers::Mode;
pub use weights::Weights;

/// Loads a checkpoint (esx's, or a converted EmbedSeg state_dict) for
/// inference; n_sigma is read from the output layer's shape.
pub fn load_for_inference(
    path: &std::path::Path,
    device: &candle_core::Device,
) -> Result<(BranchedErfnet, usize), ModelError> {
    let bad = |why: String| ModelError::Checkpoint {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let out =
        st.tensor("decoders.0.output_conv.weight")
            .map_err(|_| ModelError::MissingTensor {
                path: path.to_path_buf(),
                name: "decoders.0.output_conv.weight".into(),
            })?;
    let n_sigma = out.shape().get(1).copied().unwrap_or(0).saturating_sub(2);
    if !(1..=2).contains(&n_sigma) {
        return Err(bad(format!(
            "its output layer has {} channels; esx needs 3 or 4",
            n_sigma + 2
        )));
    }
    let weights = Weights::new(candle_core::DType::F32, device);
    BranchedErfnet::new(&weights, n_sigma, 0)?;
    weights.load(path)?;
    Ok((BranchedErfnet::for_inference(&weights, n_sigma)?, n_sigma))
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("checkpoint {path}: {why}")]
    Checkpoint { path: PathBuf, why: String },
    #[error("checkpoint {path} has no tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error("checkpoint {path}: tensor `{name}` is {found:?}, the model needs {expected:?} (does model.n_sigma match?)")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("checkpoint {path} is not EmbedSeg's 2D BranchedERFNet: missing {missing}, unexpected {unexpected}")]
    NotBranchedErfnet {
        path: PathBuf,
        missing: String,
        unexpected: String,
    },
    #[error("checkpoint {path}: {count} tensors do not fit esx's model (the file's shape, then the model's): {list}")]
    Misfits {
        path: PathBuf,
        count: usize,
        list: String,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
