//! Training: the optimiser, the schedule, checkpoints and the epoch loop.

pub mod adam;
pub mod checkpoint;
pub mod dataset;
pub mod device;
pub mod signals;
pub mod slurm_job;
pub mod snapshots;
pub mod step;
pub mod trainer;

pub use device::{device, set_threads};
pub use signals::Interrupt;
pub use trainer::{run, EpochJudge, RunResult, Start, TrainError};
