//! Where training, inference and benchmarks run: the CPU thread pool and
//! the device, opened once by name.

use candle_core::Device;

use crate::config::{parse_cuda_ordinal, Precision};

/// A device or thread count that cannot be had, in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(String);

/// Sizes rayon's pool (every CPU op runs on it): `threads` if non-zero, else
/// RAYON_NUM_THREADS or all cores. Only the first call in a process counts.
/// A RAYON_NUM_THREADS beyond reason is refused (rayon would panic on it).
pub fn set_threads(threads: usize) -> Result<(), DeviceError> {
    let max = crate::config::MAX_THREADS;
    if let Ok(text) = std::env::var("RAYON_NUM_THREADS") {
        if text.trim().parse::<usize>().map_or(true, |n| n > max) {
            return Err(DeviceError(format!(
                "RAYON_NUM_THREADS={}: expected a number of threads up to {max} (0: all cores)",
                crate::text::shorten(&text, 40)
            )));
        }
    }
    if threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.min(max))
            .build_global();
    }
    Ok(())
}

/// The device a config names; CUDA only in builds with the `cuda` feature.
/// `precision`: how its f32 convolutions compute (CUDA; the CPU's are fp32).
pub fn open(name: &str, precision: Precision) -> Result<Device, DeviceError> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = parse_cuda_ordinal(name)
        .ok_or_else(|| DeviceError(format!("device `{name}`: expected \"cpu\" or \"cuda:N\"")))?;
    open_cuda(ordinal, precision).map_err(|why| DeviceError(format!("device `{name}`: {why}")))
}

/// The device in one line for records and epoch lines: "cpu", or the GPU,
/// its memory and how its convolutions run.
pub fn describe(name: &str, device: &Device) -> String {
    #[cfg(feature = "cuda")]
    if let Some(gpu) = crate::cuda::describe(device) {
        return format!("{name}: {gpu}");
    }
    let _ = device;
    name.to_string()
}

/// A few words for an epoch line: None on the CPU, else the device and
/// its convolutions ("cuda:0, cuDNN tf32" or "cuda:0, candle convolutions").
pub fn short(name: &str, device: &Device) -> Option<String> {
    #[cfg(feature = "cuda")]
    if let Ok(cuda) = device.as_cuda_device() {
        return Some(match crate::cuda::cudnn::engine(cuda) {
            Some(e) => format!("{name}, cuDNN {}", e.precision()),
            None => format!("{name}, candle convolutions"),
        });
    }
    let _ = (name, device);
    None
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize, precision: Precision) -> Result<Device, String> {
    crate::cuda::open(ordinal, precision == Precision::Tf32)
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_ordinal: usize, _precision: Precision) -> Result<Device, String> {
    Err("this esx was built without CUDA; rebuild with `cargo install --path . --features cuda` (see README)".into())
}

/// CUDA devices this machine offers this build, or why there are none.
pub fn cuda_device_count() -> Result<usize, String> {
    #[cfg(feature = "cuda")]
    return crate::cuda::device_count();
    #[cfg(not(feature = "cuda"))]
    open_cuda(0, Precision::Fp32).map(|_| 0)
}
