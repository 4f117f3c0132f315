//! The element types the custom ops run on (f32 for training, f64 for
//! gradient checks) and access to candle's CPU storage.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, Layout, Result};
use rayon::prelude::*;

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

/// A vector of `len` elements made plane by plane (planes of `plane`
/// elements, in parallel) by `fill`, which is to write every element of the
/// plane it is given: the buffer is not zeroed first (a memset of every
/// output was ~4 % of a training step).
pub fn filled_planes<T: Elem>(
    len: usize,
    plane: usize,
    fill: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(p, dst)| {
            // Zeroing a plane that stays in cache is cheap; the saving is
            // the separate pass over the whole buffer.
            for d in dst.iter_mut() {
                d.write(T::zero());
            }
            // SAFETY: every element of dst was just written.
            let dst = unsafe { &mut *(dst as *mut [MaybeUninit<T>] as *mut [T]) };
            fill(p, dst);
        });
    // SAFETY: the first len elements were all written above.
    unsafe { v.set_len(len) };
    v
}

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

/// What surrounds a convolution's product: out = conv(x) + bias +
/// residual, then ReLU when `relu`. Added and applied block by block while
/// the block is in cache, rather than as passes of their own.
#[derive(Clone, Copy)]
pub struct Around<'a, T> {
    pub bias: Option<&'a [T]>,
    /// N×O×OH×OW, added before the ReLU (a residual block's shortcut).
    pub residual: Option<&'a [T]>,
    pub relu: bool,
}

impl<'a, T: Elem> Around<'a, T> {
    pub fn bias(bias: Option<&'a [T]>) -> Self {
        Around {
            bias,
            residual: None,
            relu: false,
        }
    }

    /// The residual of image `i` of `o` channels of `p` pixels.
    pub fn image(self, i: usize, o: usize, p: usize) -> Around<'a, T> {
        Around {
            residual: self.residual.map(|r| &r[i * o * p..(i + 1) * o * p]),
            ..self
        }
    }

    /// Columns [a, b) of every row of a zeroed rows × p output, before the product.
    pub fn init(&self, row: usize, segment: &mut [T], a: usize, p: usize) {
        if let Some(b) = self.bias {
            segment.fill(b[row]);
        }
        if let Some(r) = self.residual {
            let r = &r[row * p + a..row * p + a + segment.len()];
            segment.iter_mut().zip(r).for_each(|(v, &x)| *v += x);
        }
    }

    /// Columns [a, b) of row `row` already holding conv + bias: adds the
    /// residual and applies the ReLU.
    pub fn complete(&self, row: usize, segment: &mut [T], a: usize, p: usize) {
        match self.residual {
            Some(r) => {
                let r = &r[row * p + a..row * p + a + segment.len()];
                if self.relu {
                    segment
                        .iter_mut()
                        .zip(r)
                        .for_each(|(v, &x)| *v = relu(*v + x));
                } else {
                    segment.iter_mut().zip(r).for_each(|(v, &x)| *v += x);
                }
            }
            None => self.finish(segment),
        }
    }

    /// The same columns after the product.
    pub fn finish(&self, segment: &mut [T]) {
        if self.relu {
            // `v + 0` rather than `v` (they differ only at −0): with `v` the
            // compiler stores only where v < 0, as masked stores, which
            // took a quarter of the output transform's time on a Zen 4.
            segment.iter_mut().for_each(|v| *v = relu(*v + T::zero()));
        }
    }

    pub fn adds(&self) -> bool {
        self.bias.is_some() || self.residual.is_some()
    }
}
