//! Convolution and transposed convolution as candle custom ops (CPU, f32/f64)
//! with their backward passes, on the kernels in conv_kernels.rs.
//!
//! A transposed convolution's forward is a convolution's input gradient, and
//! its backward uses the convolution forward (for the input) and weight
//! gradient (with the roles of input and output gradient exchanged).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::batch_norm::{channel_sum, relu_gate};
use super::conv_kernels::{forward, grad_input, grad_weight, Dims};
use super::elem::relu;
use super::elem::Around;
use super::elem::{dispatch, Elem};
use super::im2col::Geom;
use num_traits::NumCast;

/// y = conv(x, w) + b with per-axis kernel, stride, padding and dilation;
/// with `relu`, max(0, ·) is fused in (its gradient gated by y > 0).
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, g: Geom, relu: bool) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Conv2d { g, relu })
}

/// PyTorch's ConvTranspose2d: w is (Cin, Cout, K, K); `g` holds its kernel,
/// stride and padding; the output grows by `output_padding` on each axis.
/// With `relu`, max(0, ·) is fused in.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: Geom,
    output_padding: usize,
    relu: bool,
) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        ConvTranspose2d {
            g,
            output_padding,
            relu,
        },
    )
}

/// relu(conv(x, w) + bias + residual), for inference only (no backward): a
/// residual block's last convolution with its batch norm folded into `w`
/// and `bias`, the shortcut and the ReLU added while each block of the
/// output is in cache.
pub fn conv2d_residual_relu(
    x: &Tensor,
    w: &Tensor,
    bias: &[f64],
    residual: &Tensor,
    g: Geom,
) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &residual.contiguous()?,
        &ConvResidualRelu {
            g,
            bias: bias.to_vec(),
        },
    )
}

struct ConvResidualRelu {
    g: Geom,
    bias: Vec<f64>,
}

impl CustomOp3 for ConvResidualRelu {
    fn name(&self) -> &'static str {
        "esx-conv2d-residual-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = conv_dims("conv2d_residual_relu", l1, l2, &self.g)?;
        let (n, o) = (d.n, d.o);
        if self.bias.len() != o {
            candle_core::bail!(
                "conv2d_residual_relu: {} biases for {o} channels",
                self.bias.len()
            );
        }
        if l3.shape().dims() != [n, o, d.oh, d.ow] {
            candle_core::bail!(
                "conv2d_residual_relu: residual {:?} is not the output's shape",
                l3.shape()
            );
        }
        dispatch!(s1, self.name(), T => {
            let bias: Vec<T> = self.bias.iter().map(|&v| <T as NumCast>::from(v).unwrap_or(<T as num_traits::Float>::nan())).collect();
            let around = Around { bias: Some(&bias), residual: Some(T::slice(s3, l3)?), relu: true };
            let out = forward::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, around, &d, &self.g);
            Ok((T::into_storage(out), Shape::from((n, o, d.oh, d.ow))))
        })
    }
}

fn dims4(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    l.shape().dims4()
}

/// The sizes of a convolution of input `x` by weight `w` (O, C, KH, KW),
/// or an error naming `op` when they do not fit `g`.
fn conv_dims(op: &str, x: &Layout, w: &Layout, g: &Geom) -> Result<Dims> {
    let (n, c, h, wd) = dims4(x)?;
    let (o, c2, kh, kw) = dims4(w)?;
    if c != c2 || kh != g.kh || kw != g.kw {
        candle_core::bail!(
            "{op}: input {:?} does not fit weight {:?}",
            x.shape(),
            w.shape()
        );
    }
    Ok(Dims::new(n, c, h, wd, o, g))
}

struct Conv2d {
    g: Geom,
    relu: bool,
}

impl CustomOp3 for Conv2d {
    fn name(&self) -> &'static str {
        "esx-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = conv_dims("conv2d", l1, l2, &self.g)?;
        let (n, o) = (d.n, d.o);
        dispatch!(s1, self.name(), T => {
            let around = Around { bias: Some(T::slice(s3, l3)?), residual: None, relu: self.relu };
            let out = forward::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, around, &d, &self.g);
            Ok((T::into_storage(out), Shape::from((n, o, d.oh, d.ow))))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = if self.relu {
            relu_gate(grad, res)?
        } else {
            grad.contiguous()?
        };
        let (_, _, h, wd) = x.dims4()?;
        let gx = grad.apply_op2_no_bwd(
            w,
            &GradInput {
                g: self.g,
                h,
                w: wd,
            },
        )?;
        let gw = x.apply_op2_no_bwd(
            &grad,
            &GradWeight {
                g: self.g,
                o: w.dim(0)?,
            },
        )?;
        let gb = channel_sum(&grad)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

struct ConvTranspose2d {
    g: Geom,
    output_padding: usize,
    relu: bool,
}

impl ConvTranspose2d {
    /// The size of the output for an input of h × w.
    fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let g = &self.g;
        let o =
            |n: usize, k: usize, s: usize, p: usize| (n - 1) * s + k + self.output_padding - 2 * p;
        (o(h, g.kh, g.sh, g.ph), o(w, g.kw, g.sw, g.pw))
    }
}

impl CustomOp3 for ConvTranspose2d {
    fn name(&self) -> &'static str {
        "esx-conv-transpose2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, cin, h, w) = dims4(l1)?;
        let (cin2, cout, kh, kw) = dims4(l2)?;
        if cin != cin2 || kh != self.g.kh || kw != self.g.kw {
            candle_core::bail!(
                "conv_transpose2d: input {:?} does not fit weight {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let (oh, ow) = self.out_size(h, w);
        // The convolution whose input gradient this is: Cout×OH×OW → Cin×H×W.
        let d = Dims {
            n,
            c: cout,
            h: oh,
            w: ow,
            o: cin,
            oh: h,
            ow: w,
        };
        dispatch!(s1, self.name(), T => {
            let mut out = grad_input::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, &d, &self.g);
            let b = T::slice(s3, l3)?;
            let relu_on = self.relu;
            out.par_chunks_mut(oh * ow).enumerate().for_each(|(i, plane)| {
                let bv = b[i % cout];
                if relu_on {
                    plane.iter_mut().for_each(|v| *v = relu(*v + bv));
                } else {
                    plane.iter_mut().for_each(|v| *v += bv);
                }
            });
            Ok((T::into_storage(out), Shape::from((n, cout, oh, ow))))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = if self.relu {
            relu_gate(grad, res)?
        } else {
            grad.contiguous()?
        };
        let gx = grad.apply_op2_no_bwd(w, &ConvNoBias { g: self.g })?;
        let gw = grad.apply_op2_no_bwd(
            x,
            &GradWeight {
                g: self.g,
                o: x.dim(1)?,
            },
        )?;
        let gb = channel_sum(&grad)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

/// conv(x, w) without bias (a transposed convolution's input gradient).
struct ConvNoBias {
    g: Geom,
}

impl CustomOp2 for ConvNoBias {
    fn name(&self) -> &'static str {
        "esx-conv2d-nobias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        let (o, _, _, _) = dims4(l2)?;
        let d = Dims::new(n, c, h, w, o, &self.g);
        dispatch!(s1, self.name(), T => {
            let out = forward::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, Around::bias(None), &d, &self.g);
            Ok((T::into_storage(out), Shape::from((n, o, d.oh, d.ow))))
        })
    }
}

/// The input gradient of a convolution whose input was h × w.
struct GradInput {
    g: Geom,
    h: usize,
    w: usize,
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "esx-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, o, _, _) = dims4(l1)?;
        let (_, c, _, _) = dims4(l2)?;
        let d = Dims::new(n, c, self.h, self.w, o, &self.g);
        dispatch!(s1, self.name(), T => {
            let gx = grad_input::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, &d, &self.g);
            Ok((T::into_storage(gx), Shape::from((n, c, self.h, self.w))))
        })
    }
}

/// The weight gradient (O, C, KH, KW) from the input and the output gradient.
struct GradWeight {
    g: Geom,
    o: usize,
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "esx-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        let d = Dims::new(n, c, h, w, self.o, &self.g);
        let (_, o2, oh, ow) = dims4(l2)?;
        if (o2, oh, ow) != (self.o, d.oh, d.ow) {
            candle_core::bail!(
                "conv2d grad weight: gradient {:?} does not fit input {:?}",
                l2.shape(),
                l1.shape()
            );
        }
        dispatch!(s1, self.name(), T => {
            let gw = grad_weight::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, &d, &self.g);
            Ok((T::into_storage(gw), Shape::from((self.o, c, self.g.kh, self.g.kw))))
        })
    }
}
