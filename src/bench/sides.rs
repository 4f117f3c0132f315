//! The two sides of a parity check: the reference (the fused CPU ops) and
//! the subject (the native backend on a device) on the same weights, and
//! how far apart they may be.

use candle_core::{DType, Device, Tensor};

use super::Figure;
use crate::backend::Backend;
use crate::loss::{EmbedSegLoss, LossWeights};
use crate::model::{BranchedErfnet, Weights};

pub struct ParityBench {
    pub batch: usize,
    pub size: usize,
    pub dtypes: Vec<DType>,
    /// Training steps of the same-seed trajectory (0: none).
    pub steps: usize,
    /// The learning rate of the trajectory.
    pub lr: f64,
    /// The device's f32 convolutions run TF32 (looser bounds).
    pub tf32: bool,
}

/// Bounds on max |a − b| / max |b|, per dtype: (outputs and loss terms,
/// gradients, Adam step). Gradients are measured against the largest
/// gradient element of the whole model: a convolution's bias followed by
/// a batch norm has a true gradient of zero, so its own scale is rounding
/// noise on both sides. f64 is held to rounding. In f32 the batch norms'
/// backward loses digits to cancellation, more through candle's separate
/// ops than through the fused op's f64 sums, and it compounds over 16
/// layers (~1e-2 on the first layers; PyTorch's f32 against its own f64
/// differ by up to 5e-2), so f32 gradients are held loosely, in norm.
///
/// TF32 convolutions round their inputs to 10-bit mantissas (relative
/// error ~5e-4 a product): their bounds here are estimates from that, to
/// be replaced by what a GPU measures. Adam's step is taken from the same
/// gradients on both sides, so its bound does not change.
pub(crate) struct Bounds {
    pub out: f64,
    pub train: f64,
    pub grad: f64,
    pub adam: f64,
}

impl Bounds {
    pub fn of(dtype: DType, tf32: bool) -> Bounds {
        match (dtype, tf32) {
            (DType::F64, _) => Bounds {
                out: 1e-9,
                train: 1e-9,
                grad: 1e-9,
                adam: 1e-9,
            },
            // Batch statistics in f32 (the fused op sums them in f64): ~1e-4.
            (_, false) => Bounds {
                out: 1e-4,
                train: 1e-3,
                grad: 5e-2,
                adam: 1e-5,
            },
            (_, true) => Bounds {
                out: 2e-2,
                train: 2e-2,
                grad: 2.5e-1,
                adam: 1e-5,
            },
        }
    }
}

pub(crate) struct Side {
    pub weights: Weights,
    pub net: BranchedErfnet,
    pub loss: EmbedSegLoss,
}

impl Side {
    pub fn new(dtype: DType, device: &Device, backend: Backend) -> candle_core::Result<Side> {
        let weights = Weights::with_backend(dtype, device, backend);
        let net = BranchedErfnet::new(&weights, 2, 0)?;
        let lw = LossWeights {
            w_inst: 1.0,
            w_var: 10.0,
            w_seed: 1.0,
            foreground_weight: 10.0,
        };
        Ok(Side {
            weights,
            net,
            loss: EmbedSegLoss::new(lw, 2, backend),
        })
    }
}

pub(crate) fn flat(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
}

/// max |a − b| / max |b|
pub(crate) fn rel_max(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
    let (a, b) = (flat(a)?, flat(b)?);
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    Ok(a.iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale)
}

pub(crate) fn figure(name: String, value: f64, bound: f64, detail: String) -> Figure {
    // NaN fails too.
    let pass = value <= bound;
    Figure {
        name,
        value,
        unit: "rel".into(),
        target: Some(format!("≤ {bound:e}")),
        detail: format!("{}{detail}", if pass { "ok" } else { "FAILED" }),
    }
}

/// The reference (fused CPU ops, PyTorch's initialisation with random
/// output weights) and the subject on `device` with the same weights.
pub(crate) fn pair(
    dtype: DType,
    device: &Device,
    scratch: &std::path::Path,
) -> candle_core::Result<(Side, Side)> {
    let tag = format!("{dtype:?}").to_lowercase();
    let reference = Side::new(dtype, &Device::Cpu, Backend::Fused)?;
    reference.weights.init_pytorch(1)?;
    // Random output weights (EmbedSeg's zeros would leave the offset
    // decoder without gradients to compare).
    let checkpoint = scratch.join(format!("{tag}.safetensors"));
    reference
        .weights
        .save(&checkpoint, &[], None)
        .map_err(candle_core::Error::wrap)?;
    let subject = Side::new(dtype, device, Backend::Native)?;
    subject
        .weights
        .load(&checkpoint)
        .map_err(candle_core::Error::wrap)?;
    Ok((reference, subject))
}
