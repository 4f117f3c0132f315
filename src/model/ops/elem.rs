//! The element types the custom ops run on (f32 for training, f64 for
//! gradient checks) and access to candle's CPU storage.

use candle_core::{bail, CpuStorage, Layout, Result};

pub trait Elem:
    num_traits::Float + std::iter::Sum + std::ops::AddAssign + Send + Sync + Copy + Default + 'static
{
    fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [Self]>;
    fn into_storage(v: Vec<Self>) -> CpuStorage;
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("custom op input must be contiguous"),
    }
}

impl Elem for f32 {
    fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
        match storage {
            CpuStorage::F32(v) => contiguous(v, layout),
            _ => bail!("expected f32 storage"),
        }
    }

    fn into_storage(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Elem for f64 {
    fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f64]> {
        match storage {
            CpuStorage::F64(v) => contiguous(v, layout),
            _ => bail!("expected f64 storage"),
        }
    }

    fn into_storage(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// Runs `$body` with `$t` bound to the storage's element type.
macro_rules! dispatch {
    ($storage:expr, $name:expr, $t:ident => $body:expr) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => {
                type $t = f32;
                $body
            }
            candle_core::CpuStorage::F64(_) => {
                type $t = f64;
                $body
            }
            _ => candle_core::bail!("{}: f32 or f64 tensors only", $name),
        }
    };
}
pub(crate) use dispatch;

/// PyTorch's ReLU: NaN stays NaN (f32::max would turn it into 0 and hide
/// corrupt input).
#[inline]
pub fn relu<T: Elem>(v: T) -> T {
    if v < T::zero() {
        T::zero()
    } else {
        v
    }
}
