//! One batch through the network and the loss, the checks on its result, and
//! validation: what the epoch loop repeats.

use candle_core::{Device, Tensor};

use super::checkpoint::EpochSums;
use super::dataset::TrainData;
use super::TrainError;
use crate::config::Config;
use crate::data::batches::{Augment, Batch, BatchStream};
use crate::loss::{EmbedSegLoss, LossTerms, LossValues};
use crate::model::{BranchedErfnet, Mode};

/// Mean loss terms over an epoch's batches.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Means {
    pub loss: f64,
    pub inst: f64,
    pub var: f64,
    pub seed: f64,
}

impl Means {
    pub fn of(s: &EpochSums) -> Means {
        let n = s.batches.max(1) as f64;
        Means {
            loss: s.loss / n,
            inst: s.inst / n,
            var: s.var / n,
            seed: s.seed / n,
        }
    }
}

/// The batch goes to the device, through the network and the loss; what
/// comes back is the loss terms (and, with `ious`, each instance's IoU).
pub fn step_loss(
    net: &BranchedErfnet,
    batch: &Batch,
    dev: &Device,
    loss: &EmbedSegLoss,
    mode: Mode,
    ious: bool,
) -> Result<LossTerms, TrainError> {
    let x = Tensor::from_slice(
        &batch.images,
        (batch.size, 1, batch.height, batch.width),
        dev,
    )?;
    let prediction = net.forward(&x, mode)?;
    Ok(loss.compute_with(
        &prediction,
        &batch.labels,
        &batch.centers,
        Some(&batch.instances),
        ious,
    )?)
}

pub fn check_finite(t: &LossValues, step: u64, epoch: u32) -> Result<(), TrainError> {
    for (term, value) in [
        ("instance", t.instance),
        ("variance", t.var),
        ("seed", t.seed),
        ("total", t.value),
    ] {
        if !value.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                epoch,
                term,
                value,
            });
        }
    }
    Ok(())
}

/// Validation means and IoU (GT-guided: φ > 0.5 against each instance, as EmbedSeg).
pub fn validate(
    net: &BranchedErfnet,
    data: &TrainData,
    dev: &Device,
    cfg: &Config,
    loss: &EmbedSegLoss,
) -> Result<Option<(Means, f64)>, TrainError> {
    if data.val.is_empty() {
        return Ok(None);
    }
    let b = cfg.batch_size;
    let mut order = data.val.clone();
    if cfg.train.val_steps > 0 {
        order.truncate(cfg.train.val_steps * b);
    }
    let mut sums = EpochSums::default();
    let mut ious = Vec::new();
    for batch in BatchStream::start(
        data.items.clone(),
        order,
        b,
        Augment::NONE,
        cfg.seed,
        0,
        0,
        2,
    ) {
        let batch = batch?;
        let terms = step_loss(net, &batch, dev, loss, Mode::Eval, true)?;
        sums.add(&terms.values()?, batch.size);
        ious.extend(terms.ious);
    }
    let iou = ious.iter().sum::<f64>() / ious.len().max(1) as f64;
    Ok(Some((Means::of(&sums), iou)))
}
