//! The epoch loop's decisions as small types that say what to do: stop at
//! a batch boundary (a signal), which checkpoints an epoch's end writes, and
//! whether a sweep's pruner lets the run go on.

use std::path::{Path, PathBuf};

use super::adam::Adam;
use super::checkpoint::{self, Position};
use super::metrics::EpochReport;
use super::signals::Interrupt;
use super::TrainError;
use crate::config::Select;
use crate::model::Weights;
use crate::progress::Reporter;
use crate::store::{checkpoint_file, RunWriter};

/// Decides at the end of an epoch whether a run goes on: a sweep's pruner.
pub trait EpochJudge {
    /// Called once epoch `epoch` of `epochs` is recorded and checkpointed:
    /// Some((stop, why)) where it decided, None where it says nothing, Err
    /// where it cannot decide (the run fails with that).
    fn judge(
        &self,
        run_dir: &Path,
        epoch: u32,
        epochs: u32,
    ) -> Result<Option<(bool, String)>, String>;
}

/// What the loop does next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    Continue,
    /// Interrupted: checkpoint where training stands and end `interrupted`.
    Stop,
    /// Pruned by the sweep's rule: end `pruned` (the epoch is checkpointed).
    Prune,
}

/// Stops between optimiser steps (never inside an accumulated virtual
/// batch) once a signal asked.
pub struct StopPolicy<'a> {
    interrupt: &'a Interrupt,
}

impl<'a> StopPolicy<'a> {
    pub fn new(interrupt: &'a Interrupt) -> StopPolicy<'a> {
        StopPolicy { interrupt }
    }

    pub fn before_batch(&self, accumulating: bool) -> Action {
        if !accumulating && self.interrupt.requested() {
            Action::Stop
        } else {
            Action::Continue
        }
    }

    /// Why it stopped, for the run's events.
    fn why(&self) -> &'static str {
        if self.interrupt.time_limit() {
            "the job's time limit is near (SIGUSR1); "
        } else {
            ""
        }
    }
}

/// The best of the `train.select` measure so far, kept oriented so that
/// higher is better (the validation loss negated).
#[derive(Clone, Copy, Debug)]
pub struct Best {
    pub by: Select,
    value: Option<f64>,
}

impl Best {
    /// From a checkpoint's position (older checkpoints kept the IoU).
    pub fn from_position(by: Select, pos: &Position) -> Best {
        let legacy = (by == Select::Iou && pos.best_iou >= 0.0).then_some(pos.best_iou);
        Best {
            by,
            value: pos.best.or(legacy),
        }
    }

    /// The best so far, oriented (for a position).
    pub fn get(&self) -> Option<f64> {
        self.value
    }

    /// The best so far as the measure reads (the loss positive again).
    pub fn shown(&self) -> Option<f64> {
        self.value.map(|v| self.shown_value(v))
    }

    pub fn shown_value(&self, oriented: f64) -> f64 {
        match self.by {
            Select::Loss => -oriented,
            _ => oriented,
        }
    }

    /// The epoch's measure, oriented, where the epoch has one.
    pub fn measure(&self, r: &EpochReport) -> Option<f64> {
        match self.by {
            Select::Ap50 => r.val_ap50,
            Select::Ap => r.val_ap,
            Select::Iou => r.val_iou,
            Select::Loss => r.val.as_ref().map(|v| -v.loss),
        }
        .filter(|v| v.is_finite())
    }

    /// The epoch's measure where it beats the best so far (not yet taken).
    pub fn improved_by(&self, r: &EpochReport) -> Option<f64> {
        self.measure(r)
            .filter(|&m| self.value.is_none_or(|b| m > b))
    }

    pub fn take(&mut self, value: f64) {
        self.value = Some(value);
    }
}

/// The measure the best checkpoint is chosen by: `train.select`, or the
/// validation IoU where AP50 or AP cannot be had (no validation frames
/// scored), with the reason.
pub fn selection(select: Select, frames_scored: bool) -> (Select, Option<String>) {
    if matches!(select, Select::Ap50 | Select::Ap) && !frames_scored {
        (
            Select::Iou,
            Some(format!("train.select = \"{}\" but no validation frame is scored (no validation frames, log.eval_every = 0 or log.eval_frames = 0): the best checkpoint is chosen by validation IoU", select.name())),
        )
    } else {
        (select, None)
    }
}

/// Where and when checkpoints are written.
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    pub fn new(run_dir: &Path) -> Checkpoints {
        Checkpoints {
            dir: run_dir.to_path_buf(),
        }
    }

    /// An interrupted run: what is recorded is flushed, then `last` holds
    /// where training stands, then the event says so.
    pub fn stopped(
        &self,
        stop: &StopPolicy,
        writer: &mut RunWriter,
        weights: &Weights,
        opt: &Adam,
        at: &Position,
    ) -> Result<(), TrainError> {
        writer.flush()?;
        checkpoint::save(&checkpoint_file(&self.dir, "last"), weights, Some(opt), at)?;
        writer.log_event(
            "interrupted",
            &format!(
                "{}checkpoint at epoch {}, step {}",
                stop.why(),
                at.epoch + 1,
                at.step
            ),
        )?;
        Ok(())
    }

    /// An epoch's end: in the store first, then in the checkpoints (`last`,
    /// and `best` where the epoch `improved` it), both written beside their
    /// places and then put in place. Where a checkpoint cannot be written (a
    /// full disk) the store takes the epoch's end back, so that its best
    /// epoch is the one best.safetensors holds and a resume redoes the epoch.
    pub fn epoch_end(
        &self,
        writer: &mut RunWriter,
        weights: &Weights,
        opt: &Adam,
        pos: &Position,
        improved: Option<(Select, f64)>,
    ) -> Result<(), TrainError> {
        writer.flush()?;
        let saved = (|| {
            let best_file = match improved {
                Some(_) => {
                    let at = Position {
                        epoch: pos.epoch,
                        step: pos.step,
                        best: pos.best,
                        ..Position::default()
                    };
                    Some(checkpoint::stage(
                        &checkpoint_file(&self.dir, "best"),
                        weights,
                        None,
                        &at,
                    )?)
                }
                None => None,
            };
            let last_file =
                checkpoint::stage(&checkpoint_file(&self.dir, "last"), weights, Some(opt), pos)?;
            if let Some(b) = best_file {
                b.commit()?;
            }
            last_file.commit()
        })();
        if let Err(err) = saved {
            let _ = writer.forget_epoch_end(pos.epoch);
            return Err(err.into());
        }
        if let Some((by, value)) = improved {
            writer.log_event(
                "checkpoint",
                &format!("best: epoch {}, val {} {value:.4}", pos.epoch, by.name()),
            )?;
        }
        Ok(())
    }
}

/// Asks the pruner (if any) about the recorded, checkpointed epoch `epoch`;
/// its decision becomes an event.
pub fn judged(
    judge: Option<&dyn EpochJudge>,
    writer: &mut RunWriter,
    reporter: &Reporter,
    epoch: u32,
    epochs: u32,
) -> Result<Action, TrainError> {
    let Some(judge) = judge else {
        return Ok(Action::Continue);
    };
    writer.flush()?;
    match judge.judge(writer.dir(), epoch, epochs) {
        Ok(None) => Ok(Action::Continue),
        Ok(Some((stop, why))) => {
            writer.log_event(if stop { "pruned" } else { "rung" }, &why)?;
            reporter.note(&why);
            Ok(if stop {
                Action::Prune
            } else {
                Action::Continue
            })
        }
        Err(why) => Err(TrainError::Search(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_stops_only_between_optimiser_steps() {
        let interrupt = Interrupt::never();
        let stop = StopPolicy::new(&interrupt);
        assert_eq!(stop.before_batch(false), Action::Continue);
        interrupt.request();
        assert_eq!(
            stop.before_batch(true),
            Action::Continue,
            "mid virtual batch"
        );
        assert_eq!(stop.before_batch(false), Action::Stop);
        assert_eq!(stop.why(), "", "not the time limit");
    }

    fn epoch(val_iou: Option<f64>, val_ap50: Option<f64>, val_loss: Option<f64>) -> EpochReport {
        let means = |loss| super::super::step::Means {
            loss,
            inst: 0.0,
            var: 0.0,
            seed: 0.0,
        };
        EpochReport {
            epoch: 1,
            device: None,
            lr: 0.0,
            train: means(1.0),
            val: val_loss.map(means),
            val_iou,
            val_ap50,
            val_ap: val_ap50.map(|v| v / 2.0),
            images_per_s: 0.0,
            seconds: 0.0,
        }
    }

    #[test]
    fn only_a_better_measure_improves_the_best() {
        let mut best = Best::from_position(Select::Iou, &Position::default());
        assert_eq!(best.get(), None);
        assert_eq!(best.improved_by(&epoch(None, Some(0.9), None)), None);
        assert_eq!(
            best.improved_by(&epoch(Some(0.0), None, None)),
            Some(0.0),
            "the first is the best"
        );
        best.take(0.5);
        assert_eq!(
            best.improved_by(&epoch(Some(0.5), None, None)),
            None,
            "a tie keeps the earlier"
        );
        assert_eq!(best.improved_by(&epoch(Some(0.6), None, None)), Some(0.6));
        // AP50: epochs where it was not scored never improve the best.
        let mut ap = Best::from_position(Select::Ap50, &Position::default());
        assert_eq!(ap.improved_by(&epoch(Some(0.9), None, Some(0.1))), None);
        assert_eq!(
            ap.improved_by(&epoch(Some(0.1), Some(0.7), None)),
            Some(0.7)
        );
        ap.take(0.7);
        assert_eq!(ap.improved_by(&epoch(Some(0.9), Some(0.6), None)), None);
        // AP over 0.5:0.95 (the fixture's is half its AP50).
        let mut mean_ap = Best::from_position(Select::Ap, &Position::default());
        mean_ap.take(0.3);
        assert_eq!(mean_ap.improved_by(&epoch(None, Some(0.5), None)), None);
        assert_eq!(
            mean_ap.improved_by(&epoch(None, Some(0.8), None)),
            Some(0.4)
        );
        // The loss: lower is better, shown as it reads.
        let mut loss = Best::from_position(Select::Loss, &Position::default());
        assert_eq!(loss.improved_by(&epoch(None, None, Some(2.0))), Some(-2.0));
        loss.take(-2.0);
        assert_eq!(loss.improved_by(&epoch(None, None, Some(3.0))), None);
        assert_eq!(loss.improved_by(&epoch(None, None, Some(1.5))), Some(-1.5));
        assert_eq!(loss.shown(), Some(2.0));
    }

    #[test]
    fn older_checkpoints_kept_the_iou() {
        let old = Position {
            best_iou: 0.25,
            ..Position::default()
        };
        assert_eq!(Best::from_position(Select::Iou, &old).get(), Some(0.25));
        let none = Position {
            best_iou: -1.0,
            ..Position::default()
        };
        assert_eq!(Best::from_position(Select::Iou, &none).get(), None);
        let new = Position {
            best: Some(-0.5),
            best_iou: -1.0,
            ..Position::default()
        };
        assert_eq!(Best::from_position(Select::Loss, &new).get(), Some(-0.5));
    }

    #[test]
    fn ap50_falls_back_to_iou_only_without_scored_frames() {
        assert_eq!(selection(Select::Ap50, true), (Select::Ap50, None));
        let (by, why) = selection(Select::Ap50, false);
        assert_eq!(by, Select::Iou);
        assert!(why.unwrap().contains("log.eval_every"));
        assert_eq!(selection(Select::Loss, false), (Select::Loss, None));
        let (by, why) = selection(Select::Ap, false);
        assert_eq!(by, Select::Iou);
        assert!(why.unwrap().starts_with("train.select = \"ap\""));
    }
}
