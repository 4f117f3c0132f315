//! Where training and inference run: the CPU thread pool and the device.

use candle_core::Device;

use super::TrainError;
use crate::config::parse_cuda_ordinal;

/// Sizes rayon's pool (every CPU op runs on it): `threads` if non-zero, else
/// RAYON_NUM_THREADS or all cores. Only the first call in a process counts.
pub fn set_threads(threads: usize) {
    if threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

/// The device a config names; CUDA only in builds with the `cuda` feature.
pub fn device(name: &str) -> Result<Device, TrainError> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = parse_cuda_ordinal(name).ok_or_else(|| {
        TrainError::Device(format!("device `{name}`: expected \"cpu\" or \"cuda:N\""))
    })?;
    if !cfg!(feature = "cuda") {
        return Err(TrainError::Device(format!(
            "device `{name}`: this esx was built without CUDA; rebuild with `cargo install --path . --features cuda`"
        )));
    }
    Device::new_cuda(ordinal).map_err(|e| TrainError::Device(format!("device `{name}`: {e}")))
}
