//! Training: the optimiser, the schedule and the epoch loop.

pub mod adam;
