//! A run's side of its sweep: which sweep and point it is, and the pruner
//! that judges its epochs (what training asks through `train::Sweeps`).

use std::path::Path;

use super::prune::SweepJudge;
use super::SweepRecord;
use crate::store::SweepMembership;
use crate::train::{EpochJudge, Sweeps};

/// The sweeps as recorded in their sweep.db files.
pub struct RecordedSweeps;

impl Sweeps for RecordedSweeps {
    fn membership(&self, dir: &Path, index: usize) -> Result<SweepMembership, String> {
        SweepRecord::membership(dir, index).map_err(|e| e.to_string())
    }

    fn pruner(
        &self,
        dir: &Path,
        sweep_id: &str,
        index: usize,
    ) -> Result<Option<Box<dyn EpochJudge>>, String> {
        let search = SweepRecord::search(dir).map_err(|e| e.to_string())?;
        Ok(search.filter(|s| !s.pruning.is_none()).map(|search| {
            Box::new(SweepJudge {
                sweep_dir: dir.to_path_buf(),
                sweep_id: sweep_id.to_string(),
                index,
                search,
            }) as Box<dyn EpochJudge>
        }))
    }
}
