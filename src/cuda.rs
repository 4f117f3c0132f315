//! CUDA devices in a `--features cuda` build. The CUDA libraries are loaded
//! at run time (vendor/README.md), so the same binary runs on machines
//! without them; asking for a CUDA device there is a one-line error that
//! names what is missing.

use candle_core::Device;
use cudarc::driver::CudaContext;

/// The libraries candle's CUDA backend loads, with what provides them.
fn libraries() -> [(&'static str, &'static str, bool); 5] {
    // SAFETY: each check only tries to dlopen the library by its usual names.
    unsafe {
        [
            (
                "libcuda",
                "the NVIDIA driver",
                cudarc::driver::sys::is_culib_present(),
            ),
            (
                "libcublas",
                "CUDA's cuBLAS",
                cudarc::cublas::sys::is_culib_present(),
            ),
            (
                "libcublasLt",
                "CUDA's cuBLAS",
                cudarc::cublaslt::sys::is_culib_present(),
            ),
            (
                "libcurand",
                "CUDA's cuRAND",
                cudarc::curand::sys::is_culib_present(),
            ),
            (
                "libnvrtc",
                "CUDA's NVRTC",
                cudarc::nvrtc::sys::is_culib_present(),
            ),
        ]
    }
}

/// Why no CUDA device can be opened here, or the number of devices.
pub fn device_count() -> Result<usize, String> {
    let missing: Vec<String> = libraries()
        .iter()
        .filter(|(_, _, present)| !present)
        .map(|(lib, from, _)| format!("{lib} ({from})"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "this machine has no {} (CUDA libraries are looked for on LD_LIBRARY_PATH and the loader's paths)",
            missing.join(", ")
        ));
    }
    let n = CudaContext::device_count().map_err(|e| {
        let text = |r: Result<&std::ffi::CStr, _>| r.map(|s| s.to_string_lossy().into_owned());
        match (text(e.error_name()), text(e.error_string())) {
            (Ok(name), Ok(what)) => format!("the NVIDIA driver says {what} ({name})"),
            _ => format!("the NVIDIA driver: {e:?}"),
        }
    })?;
    if n <= 0 {
        return Err("the NVIDIA driver reports no CUDA device".into());
    }
    Ok(n as usize)
}

/// Opens CUDA device `ordinal`, or says in one line why it cannot.
pub fn open(ordinal: usize) -> Result<Device, String> {
    let n = device_count()?;
    if ordinal >= n {
        let which = if n == 1 {
            "1 CUDA device (cuda:0)".to_string()
        } else {
            format!("{n} CUDA devices (cuda:0 … cuda:{})", n - 1)
        };
        return Err(format!("this machine has {which}"));
    }
    Device::new_cuda(ordinal).map_err(|e| e.to_string())
}

/// The device's name and memory, for benchmarks.
pub fn describe(device: &Device) -> Option<String> {
    let ctx = device
        .as_cuda_device()
        .ok()?
        .cuda_stream()
        .context()
        .clone();
    let name = ctx.name().ok()?;
    let total = ctx.total_mem().ok()? as f64 / (1u64 << 30) as f64;
    Some(format!("{name}, {total:.0} GiB"))
}

/// Memory in use on the device (MB): candle's allocations stay in the
/// driver's pool once made, so after a step this is its high-water mark.
pub fn memory_used_mb(device: &Device) -> Option<f64> {
    let ctx = device
        .as_cuda_device()
        .ok()?
        .cuda_stream()
        .context()
        .clone();
    let (free, total) = ctx.mem_get_info().ok()?;
    Some((total - free) as f64 / 1e6)
}
