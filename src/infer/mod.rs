//! Inference: predictions on whole images and their clustering into instances.

pub mod cluster;
pub mod predict;
pub mod prediction;

pub use cluster::{cluster, ClusterParams};
pub use predict::{PredictOptions, Predictor};
pub use prediction::Prediction;
