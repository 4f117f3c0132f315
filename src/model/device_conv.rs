//! Convolutions as three custom ops, the three passes cuDNN computes:
//! forward, the input gradient ("backward data") and the weight gradient
//! ("backward filter"). A transposed convolution is the input gradient of
//! the convolution it transposes, so it is the same three with the roles
//! swapped. On a CUDA device the ops run cuDNN (src/cuda/cudnn.rs); on
//! the CPU a direct loop in f64, slow, there so that the wiring (each
//! pass's geometry, which gradient goes where) is tested against candle's
//! own convolutions on any machine.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::ops::Geom;
pub use crate::conv_pass::{Pass, Problem};

fn dims4(t: &Tensor) -> Result<[usize; 4]> {
    let (a, b, c, d) = t.dims4()?;
    Ok([a, b, c, d])
}

/// The convolution of `x` by `w` in `g`'s geometry.
fn problem(x: &Tensor, w: &Tensor, g: Geom) -> Result<Problem> {
    if (w.dim(2)?, w.dim(3)?) != (g.kh, g.kw) {
        candle_core::bail!("a {}×{} kernel's weight of {:?}", g.kh, g.kw, w.dims());
    }
    Problem::new(
        dims4(x)?,
        dims4(w)?,
        [g.ph, g.pw],
        [g.sh, g.sw],
        [g.dh, g.dw],
    )
}

/// One pass of one convolution, as a candle op.
#[derive(Clone, Copy, Debug)]
pub struct ConvPass {
    pub pass: Pass,
    pub problem: Problem,
}

impl ConvPass {
    fn check(&self, l1: &Layout, l2: &Layout) -> Result<()> {
        let (a, b) = self.problem.inputs(self.pass);
        if l1.dims() != a || l2.dims() != b {
            candle_core::bail!(
                "{:?} pass of {:?}: inputs {:?} and {:?}",
                self.pass,
                self.problem,
                l1.dims(),
                l2.dims()
            );
        }
        Ok(())
    }
}

/// A tensor's elements as f64, where its layout is contiguous.
fn values(s: &CpuStorage, l: &Layout) -> Result<Vec<f64>> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("convolution inputs must be contiguous");
    };
    Ok(match s {
        CpuStorage::F32(v) => v[start..end].iter().map(|&x| f64::from(x)).collect(),
        CpuStorage::F64(v) => v[start..end].to_vec(),
        _ => candle_core::bail!("only f32 and f64 convolutions are supported"),
    })
}

/// The pass by its definition, every product added in f64.
fn direct(pass: Pass, p: &Problem, a: &[f64], b: &[f64]) -> Vec<f64> {
    let [n, c, h, w] = p.x;
    let [k, _, kh, kw] = p.w;
    let [_, _, oh, ow] = p.y;
    let mut out = vec![0.0; p.output(pass).iter().product()];
    for ni in 0..n {
        for ki in 0..k {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((ni * k + ki) * oh + oy) * ow + ox;
                    for ci in 0..c {
                        for i in 0..kh {
                            let iy = (oy * p.stride[0] + i * p.dilation[0]).wrapping_sub(p.pad[0]);
                            if iy >= h {
                                continue;
                            }
                            for j in 0..kw {
                                let ix =
                                    (ox * p.stride[1] + j * p.dilation[1]).wrapping_sub(p.pad[1]);
                                if ix >= w {
                                    continue;
                                }
                                let xi = ((ni * c + ci) * h + iy) * w + ix;
                                let wi = ((ki * c + ci) * kh + i) * kw + j;
                                match pass {
                                    Pass::Forward => out[yi] += a[xi] * b[wi],
                                    Pass::BackwardData => out[xi] += a[yi] * b[wi],
                                    Pass::BackwardFilter => out[wi] += a[xi] * b[yi],
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

impl CustomOp2 for ConvPass {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::Forward => "conv-forward",
            Pass::BackwardData => "conv-backward-data",
            Pass::BackwardFilter => "conv-backward-filter",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.check(l1, l2)?;
        let out = direct(self.pass, &self.problem, &values(s1, l1)?, &values(s2, l2)?);
        let storage = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(out.into_iter().map(|v| v as f32).collect()),
            _ => CpuStorage::F64(out),
        };
        Ok((
            storage,
            Shape::from(self.problem.output(self.pass).to_vec()),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.check(l1, l2)?;
        let out = crate::cuda::cudnn::run(self.pass, &self.problem, (s1, l1), (s2, l2))?;
        Ok((out, Shape::from(self.problem.output(self.pass).to_vec())))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let p = self.problem;
        let op = |pass| ConvPass { pass, problem: p };
        match self.pass {
            // a = x, b = w, g like y.
            Pass::Forward => Ok((
                Some(g.apply_op2_no_bwd(b, &op(Pass::BackwardData))?),
                Some(a.apply_op2_no_bwd(&g, &op(Pass::BackwardFilter))?),
            )),
            // a = dy, b = w, g like x: the transposed convolution's gradients.
            Pass::BackwardData => Ok((
                Some(g.apply_op2_no_bwd(b, &op(Pass::Forward))?),
                Some(g.apply_op2_no_bwd(a, &op(Pass::BackwardFilter))?),
            )),
            Pass::BackwardFilter => {
                candle_core::bail!("second derivatives of convolutions are not supported")
            }
        }
    }
}

/// conv(x, w) (no bias) by the three-pass ops.
pub fn conv2d(x: &Tensor, w: &Tensor, g: Geom) -> Result<Tensor> {
    let problem = problem(x, w, g)?;
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        ConvPass {
            pass: Pass::Forward,
            problem,
        },
    )
}

/// PyTorch's conv_transpose2d(x, w) (no bias) by the three-pass ops.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, g: Geom, output_padding: usize) -> Result<Tensor> {
    if (w.dim(2)?, w.dim(3)?) != (g.kh, g.kw) {
        candle_core::bail!("a {}×{} kernel's weight of {:?}", g.kh, g.kw, w.dims());
    }
    let problem = Problem::transposed(
        dims4(x)?,
        dims4(w)?,
        [g.ph, g.pw],
        [g.sh, g.sw],
        [g.dh, g.dw],
        output_padding,
    )?;
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        ConvPass {
            pass: Pass::BackwardData,
            problem,
        },
    )
}

/// Whether convolutions on `device` run these ops (a CUDA device with
/// cuDNN) rather than candle's own.
pub fn runs_on(device: &candle_core::Device) -> bool {
    #[cfg(feature = "cuda")]
    return device
        .as_cuda_device()
        .is_ok_and(|d| crate::cuda::cudnn::engine(d).is_some());
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Var {
        Var::from_tensor(&crate::model::ops::check::rand_tensor(shape, seed)).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar::<f64>().unwrap()
    }

    /// `ours` and `theirs`, computed from x and w, agree, and so do the
    /// gradients of a weighted sum of them (each element its own weight).
    fn same_with_gradients(case: usize, ours: &Tensor, theirs: &Tensor, x: &Var, w: &Var) {
        assert_eq!(ours.dims(), theirs.dims(), "case {case}");
        assert!(max_diff(ours, theirs) < 1e-12, "case {case}: forward");
        let probe = rand(ours.dims(), 30 + case as u64);
        let grads = |t: &Tensor| {
            (t * probe.as_tensor())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let (go, gt) = (grads(ours), grads(theirs));
        for (what, v) in [("input", x), ("weight", w)] {
            let e = max_diff(go.get(v).unwrap(), gt.get(v).unwrap());
            assert!(e < 1e-12, "case {case}: {what} gradient off by {e:e}");
        }
    }

    /// Forward and both gradients of the three-pass convolution against
    /// candle's conv2d (with the padding done by hand where candle takes
    /// one padding for both axes), on the geometries ERFNet uses.
    #[test]
    fn convolution_and_its_gradients_match_candle() {
        let g = |kh, kw| Geom::kernel(kh, kw);
        let cases = [
            (g(3, 3).stride(2).pad(1, 1), [2, 3, 10, 8], 5),
            (g(3, 1).pad(1, 0), [2, 4, 9, 7], 4),
            (g(1, 3).pad(0, 2).dilate(1, 2), [1, 4, 6, 9], 4),
            (g(3, 1).pad(4, 0).dilate(4, 1), [1, 3, 11, 5], 2),
        ];
        for (i, (geom, x_dims, k)) in cases.into_iter().enumerate() {
            let x = rand(&x_dims, 10 + i as u64);
            let w = rand(&[k, x_dims[1], geom.kh, geom.kw], 20 + i as u64);
            let ours = conv2d(&x, &w, geom).unwrap();
            let padded = x
                .pad_with_zeros(2, geom.ph, geom.ph)
                .unwrap()
                .pad_with_zeros(3, geom.pw, geom.pw)
                .unwrap();
            let theirs = padded
                .conv2d(&w, 0, geom.sh, geom.dh.max(geom.dw), 1)
                .unwrap();
            same_with_gradients(i, &ours, &theirs, &x, &w);
        }
    }

    /// The transposed convolution (ERFNet's upsamplers and output layer)
    /// and its gradients against candle's conv_transpose2d.
    #[test]
    fn transposed_convolution_and_its_gradients_match_candle() {
        let cases = [
            (Geom::kernel(3, 3).stride(2).pad(1, 1), 1, [2, 4, 5, 6], 3),
            (Geom::kernel(2, 2).stride(2), 0, [1, 3, 4, 4], 2),
        ];
        for (i, (geom, out_pad, x_dims, cout)) in cases.into_iter().enumerate() {
            let x = rand(&x_dims, 40 + i as u64);
            let w = rand(&[x_dims[1], cout, geom.kh, geom.kw], 50 + i as u64);
            let ours = conv_transpose2d(&x, &w, geom, out_pad).unwrap();
            let theirs = x
                .conv_transpose2d(&w, geom.ph, out_pad, geom.sh, 1)
                .unwrap();
            same_with_gradients(10 + i, &ours, &theirs, &x, &w);
        }
    }

    #[test]
    fn f32_in_f32_out_and_bad_shapes_are_errors() {
        let x = Tensor::ones((1, 2, 5, 5), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::ones((3, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
        let y = conv2d(&x, &w, Geom::kernel(3, 3).pad(1, 1)).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        // The centre sees all 2·9 ones.
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v[12], 18.0);
        assert!(conv2d(&x, &w.narrow(1, 0, 1).unwrap(), Geom::kernel(3, 3)).is_err());
        let big = Tensor::ones((3, 2, 7, 7), DType::F32, &Device::Cpu).unwrap();
        assert!(conv2d(&x, &big, Geom::kernel(7, 7)).is_err());
    }
}
