//! EmbedSeg's training loss: Lovász hinge instance term, sigma variance term
//! and seed term. `embedseg_loss` is the fused CPU op training uses;
//! `embedseg_loss_graph` the same loss from candle's ops, its reference.

pub mod embedseg;
pub mod fused;
pub mod lovasz;
pub mod xym;

pub use embedseg::{embedseg_loss_graph, LossTerms, LossWeights};
pub use fused::embedseg_loss_fused as embedseg_loss;

#[cfg(test)]
mod fused_tests;
