//! How a sweep searches: the `[search]` table with the command line's flags
//! over it, checked once into a ready-to-use `Search`.

use serde::{Deserialize, Serialize};

use super::SweepError;
pub use crate::config::{Direction, PruneMethod, SearchConfig, SearchMethod};

/// The metric a search optimises: SPLIT/KEY of the run store's metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objective {
    pub split: String,
    pub key: String,
}

impl Objective {
    pub fn parse(text: &str) -> Result<Objective, SweepError> {
        match text.split_once('/') {
            Some((split, key)) if !split.is_empty() && !key.is_empty() && !key.contains('/') => {
                Ok(Objective {
                    split: split.into(),
                    key: key.into(),
                })
            }
            _ => Err(bad(
                "search.objective",
                format!(
                    "`{}` is not SPLIT/KEY (e.g. val/iou, val/loss)",
                    crate::text::shorten(text, 40)
                ),
            )),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.split, self.key)
    }
}

/// When a run is stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum Pruning {
    None,
    /// From `min_epochs` on, each epoch: stop a run whose best value so far
    /// is worse than the median of the others' values at that epoch.
    Median {
        min_epochs: u32,
    },
    /// Asynchronous successive halving: at the rungs min_epochs·η^k a run
    /// goes on only if it is in the top 1/η of the runs that reached the rung.
    Asha {
        min_epochs: u32,
        reduction: u32,
    },
}

impl Pruning {
    pub fn is_none(&self) -> bool {
        matches!(self, Pruning::None)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Pruning::None => "none",
            Pruning::Median { .. } => "median",
            Pruning::Asha { .. } => "asha",
        }
    }
}

/// A search, resolved: the method with its trial count and seed, the
/// objective, and the pruner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Search {
    pub method: SearchMethod,
    /// Points of random and TPE searches (None for a grid).
    pub trials: Option<usize>,
    pub seed: u64,
    pub objective: Objective,
    pub direction: Direction,
    pub pruning: Pruning,
}

/// The sweep flags that override `[search]`.
#[derive(Clone, Debug, Default)]
pub struct SearchFlags {
    pub method: Option<SearchMethod>,
    pub trials: Option<usize>,
    pub seed: Option<u64>,
    pub objective: Option<String>,
    pub direction: Option<Direction>,
    pub prune: Option<PruneMethod>,
    pub min_epochs: Option<u32>,
    pub reduction: Option<u32>,
}

/// TPE's random start: this many trials (at most a quarter of the search,
/// at least 2, at most 10 as Optuna's default) are drawn before it models.
pub fn tpe_startup(trials: usize) -> usize {
    (trials / 4).clamp(2, 10)
}

impl Search {
    /// `[search]` with `flags` over it, checked; `epochs` is the base
    /// config's (no run may be pruned before it has trained).
    pub fn resolve(
        file: &SearchConfig,
        flags: &SearchFlags,
        epochs: u32,
    ) -> Result<Search, SweepError> {
        let method = flags.method.unwrap_or(file.method);
        let trials = flags.trials.or(file.trials);
        let trials = match (method, trials) {
            (SearchMethod::Grid, Some(n)) if flags.trials.is_some() || file.trials.is_some() => {
                return Err(bad(
                    "search.trials",
                    format!(
                        "{n} trials need method = \"random\" or \"tpe\" (a grid runs every point)"
                    ),
                ))
            }
            (SearchMethod::Grid, _) => None,
            (_, None) => {
                return Err(bad(
                    "search.trials",
                    format!(
                        "method = \"{}\" needs a number of trials (--trials N)",
                        method_name(method)
                    ),
                ))
            }
            (_, Some(0)) => return Err(bad("search.trials", "must be at least 1 (got 0)".into())),
            (_, Some(n)) if n > super::plan::MAX_POINTS => {
                return Err(bad(
                    "search.trials",
                    format!("{n} is more than {} points", super::plan::MAX_POINTS),
                ))
            }
            (_, Some(n)) => Some(n),
        };
        let objective = Objective::parse(flags.objective.as_deref().unwrap_or(&file.objective))?;
        let min_epochs = flags.min_epochs.unwrap_or(file.min_epochs);
        let reduction = flags.reduction.unwrap_or(file.reduction);
        let prune = flags.prune.unwrap_or(file.prune);
        if prune != PruneMethod::None {
            if min_epochs == 0 {
                return Err(bad(
                    "search.min_epochs",
                    "must be at least 1 (got 0)".into(),
                ));
            }
            if min_epochs > epochs {
                return Err(bad(
                    "search.min_epochs",
                    format!("{min_epochs} is more than the runs' epochs ({epochs}): nothing could be pruned"),
                ));
            }
        }
        if prune == PruneMethod::Asha && reduction < 2 {
            return Err(bad(
                "search.reduction",
                format!("ASHA's η must be at least 2 (got {reduction})"),
            ));
        }
        let pruning = match prune {
            PruneMethod::None => Pruning::None,
            PruneMethod::Median => Pruning::Median { min_epochs },
            PruneMethod::Asha => Pruning::Asha {
                min_epochs,
                reduction,
            },
        };
        Ok(Search {
            method,
            trials,
            seed: flags.seed.unwrap_or(file.seed),
            objective,
            direction: flags.direction.unwrap_or(file.direction),
            pruning,
        })
    }

    /// A plain grid, nothing pruned: what every sweep was before `[search]`.
    pub fn is_plain_grid(&self) -> bool {
        self.method == SearchMethod::Grid && self.pruning.is_none()
    }

    /// `a` is better than `b` in this search's direction.
    pub fn better(&self, a: f64, b: f64) -> bool {
        match self.direction {
            Direction::Max => a > b,
            Direction::Min => a < b,
        }
    }

    /// One line for tables and progress: `tpe, 24 trials, val/iou max, asha (η 3, from epoch 2)`.
    pub fn describe(&self) -> String {
        let mut text = method_name(self.method).to_string();
        if let Some(n) = self.trials {
            text += &format!(", {n} trials");
        }
        text += &format!(
            ", objective {} ({})",
            self.objective,
            match self.direction {
                Direction::Max => "max",
                Direction::Min => "min",
            }
        );
        match self.pruning {
            Pruning::None => {}
            Pruning::Median { min_epochs } => {
                text += &format!(", median pruning from epoch {min_epochs}")
            }
            Pruning::Asha {
                min_epochs,
                reduction,
            } => text += &format!(", ASHA pruning (η {reduction}, rungs from epoch {min_epochs})"),
        }
        text
    }
}

pub fn method_name(m: SearchMethod) -> &'static str {
    match m {
        SearchMethod::Grid => "grid",
        SearchMethod::Random => "random",
        SearchMethod::Tpe => "tpe",
    }
}

/// An objective that tuning records (`val/ap50_tuned`, …) exists once a
/// run's training has ended: the runs must tune after training, and no
/// pruner can judge an epoch by it.
pub fn check_tuned_objective(
    search: &Search,
    base: &crate::config::Config,
) -> Result<(), SweepError> {
    let key = &search.objective.key;
    if !(key.ends_with("_tuned") || key.ends_with("_untuned")) {
        return Ok(());
    }
    if !search.pruning.is_none() {
        return Err(bad(
            "search.prune",
            format!(
                "the objective {} is recorded once, when training ends (by tuning); a pruner needs one every epoch: prune on val/ap50 or prune none",
                search.objective
            ),
        ));
    }
    if !base.tune.after_training {
        return Err(bad(
            "search.objective",
            format!(
                "{} is recorded by tuning after training, and tune.after_training is false",
                search.objective
            ),
        ));
    }
    Ok(())
}

fn bad(key: &str, why: String) -> SweepError {
    SweepError::BadAxis {
        key: key.into(),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(file: SearchConfig, flags: SearchFlags) -> Result<Search, String> {
        Search::resolve(&file, &flags, 10).map_err(|e| e.to_string())
    }

    #[test]
    fn flags_override_the_file_and_defaults_are_a_plain_grid() {
        let s = resolve(SearchConfig::default(), SearchFlags::default()).unwrap();
        assert!(s.is_plain_grid());
        assert_eq!(s.objective.to_string(), "val/iou");
        let file = SearchConfig {
            method: SearchMethod::Random,
            trials: Some(5),
            prune: PruneMethod::Median,
            min_epochs: 2,
            ..SearchConfig::default()
        };
        let s = resolve(
            file,
            SearchFlags {
                method: Some(SearchMethod::Tpe),
                trials: Some(24),
                prune: Some(PruneMethod::Asha),
                objective: Some("val/loss".into()),
                direction: Some(Direction::Min),
                ..SearchFlags::default()
            },
        )
        .unwrap();
        assert_eq!(s.method, SearchMethod::Tpe);
        assert_eq!(s.trials, Some(24));
        assert_eq!(
            s.pruning,
            Pruning::Asha {
                min_epochs: 2,
                reduction: 3
            }
        );
        assert!(s.better(0.1, 0.2));
    }

    #[test]
    fn bad_searches_name_the_key() {
        let cases = [
            (
                SearchConfig {
                    method: SearchMethod::Tpe,
                    ..SearchConfig::default()
                },
                "search.trials",
            ),
            (
                SearchConfig {
                    method: SearchMethod::Tpe,
                    trials: Some(0),
                    ..SearchConfig::default()
                },
                "at least 1",
            ),
            (
                SearchConfig {
                    trials: Some(3),
                    ..SearchConfig::default()
                },
                "grid runs every point",
            ),
            (
                SearchConfig {
                    prune: PruneMethod::Asha,
                    reduction: 1,
                    ..SearchConfig::default()
                },
                "search.reduction",
            ),
            (
                SearchConfig {
                    prune: PruneMethod::Median,
                    min_epochs: 11,
                    ..SearchConfig::default()
                },
                "more than the runs' epochs (10)",
            ),
            (
                SearchConfig {
                    objective: "iou".into(),
                    ..SearchConfig::default()
                },
                "SPLIT/KEY",
            ),
        ];
        for (file, expected) in cases {
            let err = resolve(file.clone(), SearchFlags::default()).unwrap_err();
            assert!(err.contains(expected), "{file:?}: {err}");
        }
    }
}
