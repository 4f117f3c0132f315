//! CUDA devices in a `--features cuda` build. The CUDA libraries are loaded
//! at run time (vendor/README.md), so the same binary runs on machines
//! without them; asking for a CUDA device there is a one-line error that
//! names what is missing. cuDNN is optional: where it is missing,
//! convolutions run candle's own kernels, and the device says so.

pub mod cudnn;
pub mod kernels;
pub mod memory;

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

/// Opens CUDA device `ordinal`, or says in one line why it cannot. Its
/// convolutions run cuDNN where this machine has cuDNN, with `tf32` on
/// tensor cores (TF32 inputs), else exact f32 products.
pub fn open(ordinal: usize, tf32: bool) -> Result<Device, String> {
    let n = device_count()?;
    if ordinal >= n {
        let which = if n == 1 {
            "1 CUDA device (cuda:0)".to_string()
        } else {
            format!("{n} CUDA devices (cuda:0 … cuda:{})", n - 1)
        };
        return Err(format!("this machine has {which}"));
    }
    let device = Device::new_cuda(ordinal).map_err(|e| e.to_string())?;
    let cuda = device.as_cuda_device().map_err(|e| e.to_string())?;
    // SAFETY: esx uses a device from one thread and one stream (the thread
    // that trains or predicts; loaders only touch host memory), so no
    // slice is shared between streams: the two events cudarc records per
    // allocation to order streams are pure overhead.
    unsafe { cuda.disable_event_tracking() };
    memory::keep_reserved(&device);
    cudnn::register(cuda, tf32);
    Ok(device)
}

/// The device in one line: name, memory, compute capability, driver, its
/// memory pool, how its convolutions run.
pub fn describe(device: &Device) -> Option<String> {
    let cuda = device.as_cuda_device().ok()?;
    let ctx = cuda.cuda_stream().context().clone();
    let name = ctx.name().ok()?;
    let total = ctx.total_mem().ok()? as f64 / (1u64 << 30) as f64;
    let (major, minor) = ctx.compute_capability().unwrap_or((0, 0));
    let mut version = 0i32;
    // SAFETY: writes one int; the driver is loaded (a device is open).
    let driver = match unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) } {
        cudarc::driver::sys::CUresult::CUDA_SUCCESS => {
            format!("CUDA {}.{}", version / 1000, (version % 1000) / 10)
        }
        _ => "of unknown version".into(),
    };
    let pool = if memory::has_pool(device) {
        "memory pool"
    } else {
        "no memory pool (cuMemAlloc per tensor)"
    };
    Some(format!(
        "{name}, {total:.0} GiB, compute {major}.{minor}, driver {driver}, {pool}, convolutions by {}",
        cudnn::describe(cuda)
    ))
}

/// The CUDA libraries this process has loaded, with their paths (from
/// /proc/self/maps): which files a run really used.
pub fn loaded_libraries() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut found: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|path| {
            let file = path.rsplit('/').next().unwrap_or("");
            [
                "libcuda.",
                "libcublas",
                "libcurand",
                "libnvrtc",
                "libcudnn",
                "libcudart",
            ]
            .iter()
            .any(|lib| file.starts_with(lib))
        })
        .map(str::to_string)
        .collect();
    found.sort();
    found.dedup();
    found
}
