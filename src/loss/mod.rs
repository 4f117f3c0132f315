//! EmbedSeg's training loss: Lovász hinge instance term, sigma variance term
//! and seed term.

pub mod embedseg;
pub mod lovasz;
pub mod xym;

pub use embedseg::{embedseg_loss, LossTerms, LossWeights};
