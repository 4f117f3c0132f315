//! BranchedERFNet (EmbedSeg's network) in candle, on custom CPU ops.

pub mod branched;
pub mod erfnet;
pub mod layers;
pub mod ops;
pub mod weights;

use std::path::PathBuf;

pub use branched::BranchedErfnet;
pub use layers::Mode;
pub use weights::Weights;

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
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
