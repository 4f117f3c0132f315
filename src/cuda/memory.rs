//! The device's memory pool: candle allocates every tensor from it
//! (cudarc's stream-ordered cuMemAllocAsync), so its attributes say what
//! tensors hold at most (the used-memory high-water mark, PyTorch's
//! max_memory_allocated) and what the pool reserved at most.

use candle_core::Device;
use cudarc::driver::result::{device, mem_pool};
use cudarc::driver::sys::{CUmemPool_attribute as Attr, CUmemoryPool};

/// The pool `device`'s allocations come from, where the device has one.
fn pool(device: &Device) -> Option<CUmemoryPool> {
    let ctx = device
        .as_cuda_device()
        .ok()?
        .cuda_stream()
        .context()
        .clone();
    if !ctx.has_async_alloc() {
        return None;
    }
    ctx.bind_to_thread().ok()?;
    // SAFETY: the device handle comes from a live context.
    unsafe { device::get_mem_pool(ctx.cu_device()).ok() }
}

fn get(pool: CUmemoryPool, attr: Attr) -> Option<u64> {
    let mut value = 0u64;
    // SAFETY: these attributes are 64-bit values (cuuint64_t).
    unsafe { mem_pool::get_attribute(pool, attr, (&mut value as *mut u64).cast()) }.ok()?;
    Some(value)
}

fn set(pool: CUmemoryPool, attr: Attr, mut value: u64) -> bool {
    // SAFETY: as in `get`.
    unsafe { mem_pool::set_attribute(pool, attr, (&mut value as *mut u64).cast()) }.is_ok()
}

/// Whether the device allocates from a memory pool (stream-ordered
/// allocation); without one candle falls back to cuMemAlloc per tensor.
pub fn has_pool(device: &Device) -> bool {
    pool(device).is_some()
}

/// Lets the pool keep what it has reserved: with the default threshold (0)
/// it hands freed memory back to the driver at every synchronisation and
/// the next step allocates it again.
pub fn keep_reserved(device: &Device) -> bool {
    pool(device).is_some_and(|p| set(p, Attr::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, u64::MAX))
}

/// Starts a new measurement: both high-water marks go back to the current
/// figures.
pub fn reset_peaks(device: &Device) {
    if let Some(p) = pool(device) {
        let _ = device.synchronize();
        set(p, Attr::CU_MEMPOOL_ATTR_USED_MEM_HIGH, 0);
        set(p, Attr::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, 0);
    }
}

/// (bytes held by tensors at most, bytes reserved at most) since the last
/// `reset_peaks`.
pub fn peaks(device: &Device) -> Option<(u64, u64)> {
    let p = pool(device)?;
    device.synchronize().ok()?;
    Some((
        get(p, Attr::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?,
        get(p, Attr::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH)?,
    ))
}
