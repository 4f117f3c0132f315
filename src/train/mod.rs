//! Training: a run's lifecycle (session.rs), the epoch loop (trainer.rs),
//! what it records (metrics.rs) and decides (policy.rs), the optimiser, the
//! schedule and checkpoints.

pub mod adam;
pub mod checkpoint;
pub mod dataset;
pub mod init;
pub mod metrics;
pub mod policy;
pub mod session;
pub mod signals;
pub mod slurm_job;
pub mod snapshots;
pub mod step;
pub mod trainer;

use std::path::PathBuf;

pub use metrics::{EpochObserver, EpochReport, MetricSink};
pub use policy::EpochJudge;
pub use session::{run, Ended, Request, RunResult, Sweeps, Watchers};
pub use signals::Interrupt;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Infer(#[from] crate::infer::InferError),
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    #[error("the loss became {value} at step {step} (epoch {epoch}) in the {term} term; training stopped (checkpoints of earlier epochs are kept)")]
    NonFinite {
        step: u64,
        epoch: u32,
        term: &'static str,
        value: f64,
    },
    #[error("cannot resume {dir}: {why}")]
    Resume { dir: PathBuf, why: String },
    /// A requeued Slurm job whose earlier run cannot be continued.
    #[error("{0}")]
    Requeued(String),
    #[error("{0}")]
    Search(String),
    /// `init` or `train.freeze` that cannot be had.
    #[error("{0}")]
    Init(String),
}
