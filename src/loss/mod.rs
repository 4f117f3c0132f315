//! EmbedSeg's training loss: Lovász hinge instance term, sigma variance term
//! and seed term, on the kernels of a `Backend`: the fused CPU op
//! (fused.rs) or candle's ops over the whole batch on its device
//! (native.rs). `embedseg_loss_graph` is the same loss written as EmbedSeg
//! writes it, one instance at a time: the readable reference both are
//! checked against.

pub mod embedseg;
pub mod fused;
pub mod lovasz;
pub mod native;
pub mod permute;
pub mod rows;
pub mod xym;

use candle_core::{Result, Tensor};

use crate::backend::Backend;
use crate::data::instances::InstanceTable;
pub use embedseg::{
    embedseg_loss_graph, embedseg_loss_graph_3d, LossTerms, LossValues, LossWeights,
};
pub use fused::embedseg_loss_fused;
pub use native::embedseg_loss_native;

/// The loss as a training run uses it: its weights, n_sigma and kernels.
#[derive(Clone, Copy, Debug)]
pub struct EmbedSegLoss {
    pub weights: LossWeights,
    pub n_sigma: usize,
    pub backend: Backend,
}

impl EmbedSegLoss {
    pub fn new(weights: LossWeights, n_sigma: usize, backend: Backend) -> EmbedSegLoss {
        EmbedSegLoss {
            weights,
            n_sigma,
            backend,
        }
    }

    /// The loss of `prediction` (N, 3 + n_sigma, H, W) against N·H·W
    /// instance ids; `ious`: each instance's IoU too (validation).
    pub fn compute(
        &self,
        prediction: &Tensor,
        labels: &[u32],
        centers: &[u32],
        ious: bool,
    ) -> Result<LossTerms> {
        self.compute_with(prediction, labels, centers, None, ious)
    }

    /// `compute` with the labels' instances already found (a batch's
    /// loader finds them beside augmentation).
    pub fn compute_with(
        &self,
        prediction: &Tensor,
        labels: &[u32],
        centers: &[u32],
        table: Option<&InstanceTable>,
        ious: bool,
    ) -> Result<LossTerms> {
        let (w, n_sigma) = (&self.weights, self.n_sigma);
        match self.backend {
            Backend::Fused => embedseg_loss_fused(prediction, labels, centers, n_sigma, w),
            Backend::Native => {
                embedseg_loss_native(prediction, labels, centers, table, n_sigma, w, ious)
            }
        }
    }
}

#[cfg(test)]
mod fused_tests;
#[cfg(test)]
mod native_tests;
