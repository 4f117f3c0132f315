//! esx: train, sweep and compare EmbedSeg cell instance segmentation models.
//!
//! The library holds everything; the `esx` binary parses arguments and calls in.
//! See ARCHITECTURE.md for the map.

pub mod backend;
pub mod bench;
pub mod config;
pub mod conv_pass;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod data;
pub mod device;
pub mod infer;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod output;
pub mod prediction;
pub mod prediction_3d;
pub mod progress;
pub mod report;
pub mod store;
pub mod sweep;
pub mod text;
pub mod train;
pub mod view;
pub mod viz;
pub mod watch;
