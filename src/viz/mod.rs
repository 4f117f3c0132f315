//! Pictures of predictions: the training panels stored with a run, and the
//! colour overlays of `esx predict --png`.

pub mod colour;
pub mod pictures;
pub mod text;

pub use pictures::{encode_png, overlay, panel, training_pictures, Picture, Sample};
