//! Each row of a (rows, cols) tensor in the order a permutation of its
//! columns gives (the Lovász hinge's sort), with the gradient put back by
//! the inverse permutation: every element is written once, one thread an
//! element on a GPU (src/cuda/kernels.rs). candle's gather would compute
//! the same rows, but its gradient is a scatter_add whose CUDA kernel runs
//! one thread per row, serial over the columns.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// out[r, j] = values[r, order[r, j]]; `order` (rows, cols) u32 holds a
/// permutation of 0..cols in each row.
pub fn permute_rows(values: &Tensor, order: &Tensor) -> Result<Tensor> {
    if !values.device().is_cpu() && !crate::backend::own_cuda_kernels() {
        return values
            .contiguous()?
            .gather(&order.contiguous()?, candle_core::D::Minus1);
    }
    values
        .contiguous()?
        .apply_op2(&order.contiguous()?, Permute { back: false })
}

/// `back`: out[r, order[r, j]] = values[r, j], the inverse.
#[derive(Clone, Copy)]
struct Permute {
    back: bool,
}

fn check(l1: &Layout, l2: &Layout) -> Result<(usize, usize)> {
    let dims = l1.shape().dims2()?;
    if l2.shape().dims2()? != dims {
        candle_core::bail!("rows {:?} permuted by {:?}", l1.dims(), l2.dims());
    }
    Ok(dims)
}

fn rows<T: Copy + Default>(v: &[T], order: &[u32], cols: usize, back: bool) -> Result<Vec<T>> {
    let mut out = vec![T::default(); v.len()];
    for (i, &o) in order.iter().enumerate() {
        let o = o as usize;
        if o >= cols {
            candle_core::bail!("permutation index {o} beyond {cols} columns");
        }
        let at = (i / cols) * cols + o;
        if back {
            out[at] = v[i];
        } else {
            out[i] = v[at];
        }
    }
    Ok(out)
}

impl CustomOp2 for Permute {
    fn name(&self) -> &'static str {
        if self.back {
            "unpermute-rows"
        } else {
            "permute-rows"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, cols) = check(l1, l2)?;
        let (Some((a, b)), Some((c, d))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("permute_rows takes contiguous tensors");
        };
        let CpuStorage::U32(order) = s2 else {
            candle_core::bail!("permute_rows takes a u32 order");
        };
        let order = &order[c..d];
        let out = match s1 {
            CpuStorage::F32(v) => CpuStorage::F32(rows(&v[a..b], order, cols, self.back)?),
            CpuStorage::F64(v) => CpuStorage::F64(rows(&v[a..b], order, cols, self.back)?),
            _ => candle_core::bail!("only f32 and f64 rows can be permuted"),
        };
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        check(l1, l2)?;
        let out = crate::cuda::kernels::permute_rows((s1, l1), (s2, l2), self.back)?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _values: &Tensor,
        order: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let back = Permute { back: !self.back };
        Ok((
            Some(grad.contiguous()?.apply_op2_no_bwd(order, &back)?),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    #[test]
    fn permutes_rows_as_gather_does_and_puts_the_gradient_back() {
        let v = Var::from_vec(
            vec![1.0f64, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0],
            (2, 4),
            &Device::Cpu,
        )
        .unwrap();
        let order =
            Tensor::from_vec(vec![2u32, 0, 3, 1, 3, 2, 1, 0], (2, 4), &Device::Cpu).unwrap();
        let ours = permute_rows(&v, &order).unwrap();
        let theirs = v.gather(&order, D::Minus1).unwrap();
        assert_eq!(
            ours.to_vec2::<f64>().unwrap(),
            theirs.to_vec2::<f64>().unwrap()
        );
        assert_eq!(
            ours.to_vec2::<f64>().unwrap(),
            vec![vec![3.0, 1.0, 4.0, 2.0], vec![40.0, 30.0, 20.0, 10.0]]
        );
        // Weights by position: each source element gets its position's weight.
        let w = Tensor::from_vec(
            vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            (2, 4),
            &Device::Cpu,
        )
        .unwrap();
        let g_ours = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ours = g_ours.get(&v).unwrap().to_vec2::<f64>().unwrap();
        let g_theirs = (theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(g_ours, g_theirs.get(&v).unwrap().to_vec2::<f64>().unwrap());
        assert_eq!(
            g_ours,
            vec![vec![2.0, 4.0, 1.0, 3.0], vec![8.0, 7.0, 6.0, 5.0]]
        );
    }

    #[test]
    fn an_index_beyond_the_row_is_an_error() {
        let v = Tensor::zeros((1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let order = Tensor::from_vec(vec![0u32, 2], (1, 2), &Device::Cpu).unwrap();
        assert!(permute_rows(&v, &order).is_err());
    }
}
