//! 2×2 max pooling with stride 2 (even sizes), NCHW. The gradient goes to the
//! first maximum of each window in row-major order, as PyTorch's does;
//! candle's own max_pool2d backward spreads it over the window.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use num_traits::Zero;
use rayon::prelude::*;

use super::elem::{dispatch, Elem};

pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool)
}

/// The row-major index (0..4) of the first maximum of the window at (i, j).
#[inline]
fn argmax<T: Elem>(plane: &[T], w: usize, i: usize, j: usize) -> (usize, T) {
    let at = |k: usize| plane[(2 * i + k / 2) * w + 2 * j + k % 2];
    let mut best = (0, at(0));
    for k in 1..4 {
        let v = at(k);
        if v > best.1 || v.is_nan() {
            best = (k, v);
        }
    }
    best
}

struct MaxPool;

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "esx-max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        dispatch!(s, self.name(), T => {
            let x = T::slice(s, l)?;
            let mut out = vec![T::zero(); n * c * oh * ow];
            out.par_chunks_mut(oh * ow).enumerate().for_each(|(p, o)| {
                let plane = &x[p * h * w..(p + 1) * h * w];
                for i in 0..oh {
                    for j in 0..ow {
                        o[i * ow + j] = argmax(plane, w, i, j).1;
                    }
                }
            });
            Ok((T::into_storage(out), Shape::from((n, c, oh, ow))))
        })
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            x.apply_op2_no_bwd(&grad.contiguous()?, &MaxPoolBackward)?,
        ))
    }
}

struct MaxPoolBackward;

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "esx-max-pool-2x2-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, _, h, w) = l1.shape().dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        dispatch!(s1, self.name(), T => {
            let (x, g) = (T::slice(s1, l1)?, T::slice(s2, l2)?);
            let mut dx = vec![T::zero(); x.len()];
            dx.par_chunks_mut(h * w).enumerate().for_each(|(p, d)| {
                let plane = &x[p * h * w..(p + 1) * h * w];
                for i in 0..oh {
                    for j in 0..ow {
                        let k = argmax(plane, w, i, j).0;
                        d[(2 * i + k / 2) * w + 2 * j + k % 2] = g[p * oh * ow + i * ow + j];
                    }
                }
            });
            Ok((T::into_storage(dx), l1.shape().clone()))
        })
    }
}
