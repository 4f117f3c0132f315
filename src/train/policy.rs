//! The epoch loop's decisions as small types that say what to do: stop at
//! a batch boundary (a signal), which checkpoints an epoch's end writes, and
//! whether a sweep's pruner lets the run go on.

use std::path::{Path, PathBuf};

use super::adam::Adam;
use super::checkpoint::{self, Position};
use super::signals::Interrupt;
use super::TrainError;
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

/// The best validation IoU so far.
#[derive(Clone, Copy, Debug)]
pub struct Best(Option<f64>);

impl Best {
    /// From a checkpoint's position (-1: none yet).
    pub fn from_position(best_iou: f64) -> Best {
        Best((best_iou >= 0.0).then_some(best_iou))
    }

    pub fn get(&self) -> Option<f64> {
        self.0
    }

    /// For a position: -1 when there is none yet.
    pub fn or_none(&self) -> f64 {
        self.0.unwrap_or(-1.0)
    }

    /// The epoch's IoU where it beats the best so far (not yet taken).
    pub fn improved_by(&self, iou: Option<f64>) -> Option<f64> {
        iou.filter(|&iou| self.0.is_none_or(|b| iou > b))
    }

    pub fn take(&mut self, iou: f64) {
        self.0 = Some(iou);
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
        improved: Option<f64>,
    ) -> Result<(), TrainError> {
        writer.flush()?;
        let saved = (|| {
            let best_file = match improved {
                Some(iou) => {
                    let at = Position {
                        epoch: pos.epoch,
                        step: pos.step,
                        best_iou: iou,
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
        if let Some(iou) = improved {
            writer.log_event(
                "checkpoint",
                &format!("best: epoch {}, val IoU {iou:.4}", pos.epoch),
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

    #[test]
    fn only_a_better_iou_improves_the_best() {
        let mut best = Best::from_position(-1.0);
        assert_eq!(best.get(), None);
        assert_eq!(best.improved_by(None), None);
        assert_eq!(
            best.improved_by(Some(0.0)),
            Some(0.0),
            "the first is the best"
        );
        best.take(0.5);
        assert_eq!(best.improved_by(Some(0.5)), None, "a tie keeps the earlier");
        assert_eq!(best.improved_by(Some(0.6)), Some(0.6));
        assert_eq!(Best::from_position(0.25).or_none(), 0.25);
    }
}
