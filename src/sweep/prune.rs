//! Early stopping of losing runs, decided by each run itself at the end of
//! an epoch from the stores of the other runs of its sweep: no launcher
//! needs to be alive, so a Slurm array task on another node obeys it as a
//! local child does. The decision is recorded in the run's store (an event;
//! its status becomes `pruned`) and in `sweep.db` (its rungs).
//!
//! The rules are Optuna's:
//! - median (`MedianPruner`): from `min_epochs` on, each epoch, a run whose
//!   best value so far is worse than the median of the other runs' values at
//!   that epoch stops, once at least `MEDIAN_MIN_OTHERS` others reached it;
//! - ASHA (`SuccessiveHalvingPruner`): at the rungs min_epochs·η^k a run goes
//!   on if its value at the rung is among the best ⌊n/η⌋ of the n runs that
//!   reached it (itself included), or is the best when n < η.
//!
//! No run is stopped at its last epoch (it ends there anyway).

use std::path::{Path, PathBuf};

pub use super::decision::Decision;
use super::search::{Direction, Pruning, Search};
use super::SweepRecord;
use crate::store::query::{list_runs, metric_by_epoch};

/// Others that must have reached an epoch before the median rule speaks.
pub const MEDIAN_MIN_OTHERS: usize = 2;

/// The epochs at which `pruning` decides, for runs of `epochs` epochs.
pub fn is_rung(pruning: &Pruning, epoch: u32, epochs: u32) -> bool {
    if epoch >= epochs {
        return false;
    }
    match *pruning {
        Pruning::None => false,
        Pruning::Median { min_epochs } => epoch >= min_epochs,
        Pruning::Asha {
            min_epochs,
            reduction,
        } => {
            let mut rung = min_epochs.max(1) as u64;
            while rung < epoch as u64 {
                rung *= reduction.max(2) as u64;
            }
            rung == epoch as u64
        }
    }
}

fn value_at(trace: &[(u32, f64)], epoch: u32) -> Option<f64> {
    trace.iter().find(|(e, _)| *e == epoch).map(|&(_, v)| v)
}

/// The decision for a run with objective values `own` (per epoch) at the end
/// of `epoch`, among the other runs' `others`; None where the rule says
/// nothing (no rung, too few others, or no value of its own at `epoch`).
pub fn decide(
    search: &Search,
    epoch: u32,
    epochs: u32,
    own: &[(u32, f64)],
    others: &[Vec<(u32, f64)>],
) -> Option<Decision> {
    if !is_rung(&search.pruning, epoch, epochs) {
        return None;
    }
    let at_rung = value_at(own, epoch)?;
    let competing: Vec<f64> = others.iter().filter_map(|t| value_at(t, epoch)).collect();
    let n_others = competing.len();
    match search.pruning {
        Pruning::None => None,
        Pruning::Median { .. } => {
            if n_others < MEDIAN_MIN_OTHERS {
                return None;
            }
            let best = own
                .iter()
                .filter(|(e, _)| *e <= epoch)
                .map(|&(_, v)| v)
                .reduce(|a, b| if search.better(b, a) { b } else { a })?;
            let median = median(competing);
            Some(Decision {
                epoch,
                value: best,
                threshold: median,
                others: n_others,
                prune: search.better(median, best),
            })
        }
        Pruning::Asha { reduction, .. } => {
            let mut all = competing;
            all.push(at_rung);
            // Best first.
            all.sort_by(|a, b| match search.direction {
                Direction::Max => b.total_cmp(a),
                Direction::Min => a.total_cmp(b),
            });
            let promoted = (all.len() / reduction as usize).max(1);
            let threshold = all[promoted - 1];
            Some(Decision {
                epoch,
                value: at_rung,
                threshold,
                others: n_others,
                prune: search.better(threshold, at_rung),
            })
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The pruner of one run of a sweep, reading its sweep's runs.
pub struct SweepJudge {
    pub sweep_dir: PathBuf,
    pub sweep_id: String,
    pub index: usize,
    pub search: Search,
}

impl crate::train::EpochJudge for SweepJudge {
    fn judge(
        &self,
        run_dir: &Path,
        epoch: u32,
        epochs: u32,
    ) -> Result<Option<(bool, String)>, String> {
        if !is_rung(&self.search.pruning, epoch, epochs) {
            return Ok(None);
        }
        let objective = &self.search.objective;
        let (own, keys) = metric_by_epoch(run_dir, &objective.split, &objective.key)
            .map_err(|e| e.to_string())?;
        if value_at(&own, epoch).is_none() {
            return Err(format!(
                "the sweep's objective {objective} is not recorded at epoch {epoch}; this run records {}",
                if keys.is_empty() { "nothing".to_string() } else { keys.join(", ") }
            ));
        }
        let others: Vec<Vec<(u32, f64)>> = list_runs(&self.sweep_dir)
            .map_err(|e| e.to_string())?
            .into_iter()
            .flatten()
            .filter(|r| {
                r.sweep_id.as_deref() == Some(self.sweep_id.as_str())
                    && r.sweep_index != Some(self.index as i64)
                    && r.dir != run_dir
            })
            .filter_map(|r| metric_by_epoch(&r.dir, &objective.split, &objective.key).ok())
            .map(|(values, _)| values)
            .collect();
        let Some(decision) = decide(&self.search, epoch, epochs, &own, &others) else {
            return Ok(None);
        };
        let mut text = decision.describe(&self.search);
        let run_id = crate::store::select::dir_id(run_dir).unwrap_or_default();
        if let Err(e) = SweepRecord::add_rung(&self.sweep_dir, self.index, run_id, &decision) {
            text += &format!(" (not in sweep.db: {e})");
        }
        Ok(Some((decision.prune, text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::search::{Objective, SearchMethod};

    fn search(pruning: Pruning, direction: Direction) -> Search {
        Search {
            method: SearchMethod::Grid,
            trials: None,
            seed: 0,
            objective: Objective {
                split: "val".into(),
                key: "iou".into(),
            },
            direction,
            pruning,
        }
    }

    fn trace(values: &[f64]) -> Vec<(u32, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32 + 1, v))
            .collect()
    }

    #[test]
    fn asha_rungs_grow_by_eta_from_the_grace_period() {
        let p = Pruning::Asha {
            min_epochs: 2,
            reduction: 3,
        };
        let rungs: Vec<u32> = (1..=60).filter(|&e| is_rung(&p, e, 60)).collect();
        assert_eq!(rungs, [2, 6, 18, 54]);
        assert!(!is_rung(&p, 18, 18), "never at the last epoch");
        let m = Pruning::Median { min_epochs: 3 };
        let epochs: Vec<u32> = (1..=6).filter(|&e| is_rung(&m, e, 6)).collect();
        assert_eq!(epochs, [3, 4, 5]);
        assert!(!is_rung(&Pruning::None, 3, 6));
    }

    #[test]
    fn asha_keeps_the_top_third_at_a_rung() {
        let s = search(
            Pruning::Asha {
                min_epochs: 1,
                reduction: 3,
            },
            Direction::Max,
        );
        // Five others at epoch 1: 0.1…0.5; with this run six values, the top 2 go on.
        let others: Vec<_> = [0.1, 0.2, 0.3, 0.4, 0.5]
            .iter()
            .map(|&v| trace(&[v, v]))
            .collect();
        let d = decide(&s, 1, 4, &trace(&[0.45]), &others).unwrap();
        assert_eq!((d.threshold, d.others, d.prune), (0.45, 5, false));
        let d = decide(&s, 1, 4, &trace(&[0.35]), &others).unwrap();
        assert!(d.prune);
        assert_eq!(d.threshold, 0.4);
        // A tie with the cut-off goes on.
        let d = decide(&s, 1, 4, &trace(&[0.4]), &others[..4]).unwrap();
        assert_eq!((d.threshold, d.prune), (0.4, false));
        // Fewer runs than η: only the best so far goes on.
        let d = decide(&s, 1, 4, &trace(&[0.3]), &others[4..]).unwrap();
        assert!(d.prune);
        let d = decide(&s, 1, 4, &trace(&[0.6]), &others[4..]).unwrap();
        assert!(!d.prune);
        // The first run to reach a rung always goes on.
        assert!(!decide(&s, 1, 4, &trace(&[0.0]), &[]).unwrap().prune);
    }

    #[test]
    fn asha_minimising_keeps_the_lowest() {
        let s = search(
            Pruning::Asha {
                min_epochs: 1,
                reduction: 2,
            },
            Direction::Min,
        );
        let others = vec![trace(&[1.0]), trace(&[2.0]), trace(&[3.0])];
        assert!(!decide(&s, 1, 3, &trace(&[1.5]), &others).unwrap().prune);
        assert!(decide(&s, 1, 3, &trace(&[2.5]), &others).unwrap().prune);
    }

    #[test]
    fn median_compares_the_best_so_far_with_the_others_at_that_epoch() {
        let s = search(Pruning::Median { min_epochs: 2 }, Direction::Max);
        let others = vec![
            trace(&[0.1, 0.5, 0.9]),
            trace(&[0.1, 0.3, 0.2]),
            trace(&[0.2, 0.4]),
        ];
        // Median at epoch 2 of 0.5, 0.3, 0.4 is 0.4.
        let d = decide(&s, 2, 3, &trace(&[0.1, 0.35]), &others).unwrap();
        assert_eq!((d.threshold, d.value, d.prune), (0.4, 0.35, true));
        // Its best so far counts, not its value now.
        let d = decide(&s, 2, 3, &trace(&[0.45, 0.2]), &others).unwrap();
        assert!(!d.prune);
        // Equal to the median goes on.
        assert!(
            !decide(&s, 2, 3, &trace(&[0.1, 0.4]), &others)
                .unwrap()
                .prune
        );
        // Even count: the mean of the middle two.
        let d = decide(&s, 2, 4, &trace(&[0.0, 0.0]), &others[..2]).unwrap();
        assert!((d.threshold - 0.4).abs() < 1e-12);
        // Before the grace period, too few others, at the end: nothing said.
        assert!(decide(&s, 1, 3, &trace(&[0.0]), &others).is_none());
        assert!(decide(&s, 2, 3, &trace(&[0.0, 0.0]), &others[..1]).is_none());
        assert!(decide(&s, 3, 3, &trace(&[0.0, 0.0, 0.0]), &others).is_none());
    }

    #[test]
    fn runs_that_never_report_do_not_compete() {
        let s = search(Pruning::Median { min_epochs: 1 }, Direction::Max);
        // Two runs report nothing at epoch 1 (one nothing at all, one only later).
        let others = vec![Vec::new(), vec![(2, 0.9)], trace(&[0.5])];
        assert!(decide(&s, 1, 3, &trace(&[0.1]), &others).is_none());
        let s = search(
            Pruning::Asha {
                min_epochs: 1,
                reduction: 3,
            },
            Direction::Max,
        );
        let d = decide(&s, 1, 3, &trace(&[0.1]), &others).unwrap();
        assert_eq!(d.others, 1);
        // A run without its own value at the rung is not judged (the judge
        // reports the missing objective).
        assert!(decide(&s, 1, 3, &[], &others).is_none());
    }
}
