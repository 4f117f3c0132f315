//! What training reports: each step's loss terms and each epoch's figures,
//! recorded as scalars (the one place that logs them) and handed to whoever
//! shows them.

use super::step::Means;
use crate::loss::LossValues;
use crate::metrics::Scores;
use crate::store::{RunWriter, StoreError};

/// One epoch's figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EpochReport {
    pub epoch: u32,
    /// Where it ran, when not on the CPU ("cuda:0, cuDNN tf32").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub lr: f64,
    pub train: Means,
    pub val: Option<Means>,
    pub val_iou: Option<f64>,
    /// AP at IoU 0.5 of the validation frames, at the epochs they are scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_ap50: Option<f64>,
    /// AP over IoU 0.5:0.95 of the same frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_ap: Option<f64>,
    pub images_per_s: f64,
    pub seconds: f64,
}

/// Shows each epoch as it ends (the CLI prints a line; tests may count).
pub trait EpochObserver {
    fn epoch_ended(&self, report: &EpochReport, epochs: u32);
}

/// Sees nothing.
pub struct Unobserved;

impl EpochObserver for Unobserved {
    fn epoch_ended(&self, _: &EpochReport, _: u32) {}
}

/// Where training's scalars go: `step/*` every step, `train/*` and `val/*`
/// at each epoch's end.
pub trait MetricSink {
    fn step(&mut self, step: u64, epoch: u32, values: &LossValues) -> Result<(), StoreError>;
    /// The epoch's training figures (its validation is not known yet).
    fn training(&mut self, step: u64, report: &EpochReport) -> Result<(), StoreError>;
    /// The epoch's validation figures, where it has them.
    fn validation(&mut self, step: u64, report: &EpochReport) -> Result<(), StoreError>;
    /// AP and SEG of the validation frames, at the epochs they are scored.
    fn scores(&mut self, step: u64, epoch: u32, scores: &Scores) -> Result<(), StoreError>;
}

impl MetricSink for RunWriter {
    fn scores(&mut self, step: u64, epoch: u32, scores: &Scores) -> Result<(), StoreError> {
        log_all(self, step, epoch, "val", &scores.scalars())
    }

    fn step(&mut self, step: u64, epoch: u32, values: &LossValues) -> Result<(), StoreError> {
        log_all(
            self,
            step,
            epoch,
            "step",
            &[
                ("loss", values.value),
                ("inst", values.instance),
                ("var", values.var),
                ("seed", values.seed),
            ],
        )
    }

    fn training(&mut self, step: u64, r: &EpochReport) -> Result<(), StoreError> {
        let t = &r.train;
        log_all(
            self,
            step,
            r.epoch,
            "train",
            &[
                ("loss", t.loss),
                ("inst", t.inst),
                ("var", t.var),
                ("seed", t.seed),
                ("lr", r.lr),
                ("images_per_s", r.images_per_s),
                ("seconds", r.seconds),
            ],
        )
    }

    fn validation(&mut self, step: u64, r: &EpochReport) -> Result<(), StoreError> {
        let (Some(v), Some(iou)) = (&r.val, r.val_iou) else {
            return Ok(());
        };
        log_all(
            self,
            step,
            r.epoch,
            "val",
            &[
                ("loss", v.loss),
                ("inst", v.inst),
                ("var", v.var),
                ("seed", v.seed),
                ("iou", iou),
            ],
        )
    }
}

fn log_all(
    writer: &mut RunWriter,
    step: u64,
    epoch: u32,
    split: &str,
    values: &[(&str, f64)],
) -> Result<(), StoreError> {
    for &(key, v) in values {
        writer.log_scalar(step, epoch, split, key, v)?;
    }
    Ok(())
}
