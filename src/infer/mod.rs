//! Inference: predictions on whole images, their clustering into instances,
//! and evaluation against annotated frames.

pub mod cluster;
pub mod cluster_3d;
pub mod evaluate;
pub mod files;
pub mod import;
pub mod predict;
pub mod segment;
pub mod source;
pub mod tune;

use std::path::PathBuf;

pub use crate::prediction::Prediction;
pub use cluster::{cluster, ClusterParams};
pub use predict::{PredictOptions, Predictor};
pub use segment::{Segmented, Segmenter};
pub use source::{ModelSource, Which};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("run {dir} has no checkpoint (it ended before its first epoch)")]
    NoCheckpoint { dir: PathBuf },
    #[error("run {dir}: its recorded config: {why}")]
    RunConfig { dir: PathBuf, why: String },
    #[error("{0}")]
    NoFrames(String),
}
