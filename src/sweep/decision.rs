//! A pruner's decision at one epoch: what the run records in its events and
//! its sweep in sweep.db.

use super::search::{Pruning, Search};

/// What the pruner decided at one epoch.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Decision {
    pub epoch: u32,
    /// The run's value the rule compared (ASHA: at the rung; median: its
    /// best so far).
    pub value: f64,
    /// The value it had to reach: the median, or the worst value that still
    /// goes on.
    pub threshold: f64,
    /// Other runs with a value at this epoch.
    pub others: usize,
    pub prune: bool,
}

impl Decision {
    /// One line for the run's events and the sweep's record.
    pub fn describe(&self, search: &Search) -> String {
        let rule = match search.pruning {
            Pruning::Median { .. } => "median of",
            _ => "rung cut-off among",
        };
        format!(
            "{} at epoch {}: {} {:.6} against the {rule} {} other run{}: {:.6}",
            if self.prune { "pruned" } else { "goes on" },
            self.epoch,
            search.objective,
            self.value,
            self.others,
            if self.others == 1 { "" } else { "s" },
            self.threshold
        )
    }
}
