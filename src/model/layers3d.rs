//! The 3D layers of EmbedSeg's erfnet_3d.py, on (N, C, D, H, W) tensors and
//! made of candle's 2D ops (candle has no conv3d), so that autograd gives
//! their gradients: a factorised convolution along one axis is a 2D
//! convolution over a reshaped view; the 3×3×3 stride-2 convolution and the
//! stride-2 transposed convolutions are sums of 2D ones over the kernel's z
//! taps; batch norm is the 2D layer over (N, C, D·H, W). Weights keep
//! PyTorch's 5D shapes and names. These run candle's kernels whatever the
//! backend (the fused CPU kernels serve 2D only so far).

use candle_core::{Result, Tensor, D};
use candle_nn::Init;

use super::layers::Builders;

/// Which axis a factorised kernel runs along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    Z,
    Y,
    X,
}

/// A 3-tap convolution along one axis (3×1×1, 1×3×1 or 1×1×3), stride 1,
/// "same" padding at `dilation`.
pub struct ConvAxis {
    weight: Tensor,
    bias: Tensor,
    axis: Axis,
    dilation: usize,
}

fn param(b: &Builders, shape: &[usize], name: &str) -> Result<Tensor> {
    b.params.get_with_hints(shape, name, Init::Const(0.0))
}

impl ConvAxis {
    pub fn new(
        b: &Builders,
        cin: usize,
        cout: usize,
        axis: Axis,
        dilation: usize,
    ) -> Result<ConvAxis> {
        let shape = match axis {
            Axis::Z => [cout, cin, 3, 1, 1],
            Axis::Y => [cout, cin, 1, 3, 1],
            Axis::X => [cout, cin, 1, 1, 3],
        };
        Ok(ConvAxis {
            weight: param(b, &shape, "weight")?,
            bias: param(b, &[cout], "bias")?,
            axis,
            dilation,
        })
    }

    /// conv(x) + bias, then ReLU if `relu`.
    pub fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (n, c, d, h, w) = x.dims5()?;
        let cout = self.weight.dim(0)?;
        let p = self.dilation;
        // As a 2D image whose rows run along the kernel's axis (z, y) or
        // whose columns do (x); padded along that axis only.
        let y = match self.axis {
            Axis::Z => {
                let k = self.weight.reshape((cout, c, 3, 1))?;
                x.reshape((n, c, d, h * w))?
                    .pad_with_zeros(2, p, p)?
                    .conv2d(&k, 0, 1, p, 1)?
                    .reshape((n, cout, d, h, w))?
            }
            Axis::Y => {
                let k = self.weight.reshape((cout, c, 3, 1))?;
                x.permute((0, 2, 1, 3, 4))?
                    .reshape((n * d, c, h, w))?
                    .pad_with_zeros(2, p, p)?
                    .conv2d(&k, 0, 1, p, 1)?
                    .reshape((n, d, cout, h, w))?
                    .permute((0, 2, 1, 3, 4))?
            }
            Axis::X => {
                let k = self.weight.reshape((cout, c, 1, 3))?;
                x.reshape((n, c, d * h, w))?
                    .pad_with_zeros(3, p, p)?
                    .conv2d(&k, 0, 1, p, 1)?
                    .reshape((n, cout, d, h, w))?
            }
        };
        let y = y.broadcast_add(&self.bias.reshape((1, cout, 1, 1, 1))?)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

/// (N, C, D, H, W) → (N·D, C, H, W): the planes as a batch.
fn planes(x: &Tensor) -> Result<Tensor> {
    let (n, c, d, h, w) = x.dims5()?;
    x.permute((0, 2, 1, 3, 4))?.reshape((n * d, c, h, w))
}

/// The inverse of `planes` for `n` volumes.
fn volumes(p: &Tensor, n: usize) -> Result<Tensor> {
    let (nd, c, h, w) = p.dims4()?;
    p.reshape((n, nd / n, c, h, w))?.permute((0, 2, 1, 3, 4))
}

/// Every other plane from `start`: planes start, start + 2, … (`count`).
fn every_other_plane(x: &Tensor, start: usize, count: usize) -> Result<Tensor> {
    let (n, c, _, h, w) = x.dims5()?;
    x.narrow(2, start, 2 * count)?
        .reshape((n, c, count, 2, h, w))?
        .narrow(3, 0, 1)?
        .squeeze(3)
}

/// The z tap `k` of a 5D kernel: its 2D kernel.
fn tap(weight: &Tensor, k: usize) -> Result<Tensor> {
    weight.narrow(2, k, 1)?.squeeze(2)
}

/// Conv3d 3×3×3, stride 2, padding 1 (the downsampler's), on even sizes.
pub struct ConvDown {
    weight: Tensor,
    bias: Tensor,
}

impl ConvDown {
    pub fn new(b: &Builders, cin: usize, cout: usize) -> Result<ConvDown> {
        Ok(ConvDown {
            weight: param(b, &[cout, cin, 3, 3, 3], "weight")?,
            bias: param(b, &[cout], "bias")?,
        })
    }

    /// out[z] = Σ_k conv2d(in[2z + k − 1], W[:, :, k]) + bias.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, _, d, _, _) = x.dims5()?;
        let padded = x.pad_with_zeros(2, 1, 1)?;
        let mut sum: Option<Tensor> = None;
        for k in 0..3 {
            let p = planes(&every_other_plane(&padded, k, d / 2)?)?;
            let y = p.conv2d(&tap(&self.weight, k)?, 1, 2, 1, 1)?;
            sum = Some(match sum {
                None => y,
                Some(s) => (s + y)?,
            });
        }
        let y = volumes(&sum.expect("three taps"), n)?;
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1, 1))?)
    }
}

/// ConvTranspose3d, stride 2: kernel 3 with padding 1 and output padding 1
/// (the upsampler's), or kernel 2 with none (the output layer's). Output
/// planes 2z and 2z + 1 are 2D transposed convolutions of input planes by
/// the kernel's z taps: for kernel 3, even ← tap 1 of plane z, odd ← tap 2
/// of plane z + tap 0 of plane z + 1; for kernel 2, even ← tap 0, odd ←
/// tap 1, both of plane z.
pub struct ConvTransposeUp {
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
}

impl ConvTransposeUp {
    pub fn new(b: &Builders, cin: usize, cout: usize, kernel: usize) -> Result<ConvTransposeUp> {
        assert!(kernel == 2 || kernel == 3, "kernel 2 or 3");
        Ok(ConvTransposeUp {
            weight: param(b, &[cin, cout, kernel, kernel, kernel], "weight")?,
            bias: param(b, &[cout], "bias")?,
            kernel,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, _, d, _, _) = x.dims5()?;
        let up = |p: &Tensor, k: usize| -> Result<Tensor> {
            let (pad, out_pad) = if self.kernel == 3 { (1, 1) } else { (0, 0) };
            p.conv_transpose2d(&tap(&self.weight, k)?, pad, out_pad, 2, 1)
        };
        let here = planes(x)?;
        let (even, odd) = if self.kernel == 3 {
            // plane z + 1 for every z (zero past the last)
            let next = planes(&x.narrow(2, 1, d - 1)?.pad_with_zeros(2, 0, 1)?)?;
            (up(&here, 1)?, (up(&here, 2)? + up(&next, 0)?)?)
        } else {
            (up(&here, 0)?, up(&here, 1)?)
        };
        let (_, c, h, w) = even.dims4()?;
        let both = Tensor::stack(&[&even, &odd], 1)?; // (N·D, 2, C, H, W)
        let y = volumes(&both.reshape((n * d * 2, c, h, w))?, n)?;
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1, 1))?)
    }
}

/// 2×2×2 max pooling, stride 2, on even sizes, with PyTorch's gradient (to
/// the first maximum of each window in z, y, x order).
pub fn max_pool_2x2x2(x: &Tensor) -> Result<Tensor> {
    let (n, c, d, h, w) = x.dims5()?;
    let windows = x
        .reshape(vec![n, c, d / 2, 2, h / 2, 2, w / 2, 2])?
        .permute(vec![0, 1, 2, 4, 6, 3, 5, 7])?
        .reshape((n, c, d / 2, h / 2, w / 2, 8))?;
    let first_max = windows.argmax_keepdim(D::Minus1)?;
    windows.gather(&first_max, D::Minus1)?.squeeze(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// A direct 3D convolution, by its definition: the reference the
    /// reshaped and tap-summed forms are checked against.
    #[allow(clippy::too_many_arguments)]
    fn conv3d_direct(
        x: &[f64],
        (n, c, d, h, w): (usize, usize, usize, usize, usize),
        k: &[f64],
        (co, kd, kh, kw): (usize, usize, usize, usize),
        stride: usize,
        pad: [usize; 3],
        dil: [usize; 3],
    ) -> (Vec<f64>, [usize; 3]) {
        let out = |len: usize, k: usize, p: usize, dl: usize| {
            (len + 2 * p - dl * (k - 1) - 1) / stride + 1
        };
        let (od, oh, ow) = (
            out(d, kd, pad[0], dil[0]),
            out(h, kh, pad[1], dil[1]),
            out(w, kw, pad[2], dil[2]),
        );
        let mut y = vec![0.0; n * co * od * oh * ow];
        for b in 0..n {
            for o in 0..co {
                for z in 0..od {
                    for yy in 0..oh {
                        for xx in 0..ow {
                            let mut acc = 0.0;
                            for i in 0..c {
                                for a in 0..kd {
                                    for bb in 0..kh {
                                        for cc in 0..kw {
                                            let iz = (z * stride + a * dil[0]) as isize
                                                - pad[0] as isize;
                                            let iy = (yy * stride + bb * dil[1]) as isize
                                                - pad[1] as isize;
                                            let ix = (xx * stride + cc * dil[2]) as isize
                                                - pad[2] as isize;
                                            if iz < 0
                                                || iy < 0
                                                || ix < 0
                                                || iz >= d as isize
                                                || iy >= h as isize
                                                || ix >= w as isize
                                            {
                                                continue;
                                            }
                                            let xi = (((b * c + i) * d + iz as usize) * h
                                                + iy as usize)
                                                * w
                                                + ix as usize;
                                            let ki = (((o * c + i) * kd + a) * kh + bb) * kw + cc;
                                            acc += x[xi] * k[ki];
                                        }
                                    }
                                }
                            }
                            y[(((b * co + o) * od + z) * oh + yy) * ow + xx] = acc;
                        }
                    }
                }
            }
        }
        (y, [od, oh, ow])
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f64 / 500.0) - 1.0)
            .collect()
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    #[test]
    fn factorised_and_strided_convs_equal_the_direct_3d_convolution() {
        let dev = Device::Cpu;
        let (n, c, d, h, w, co) = (2, 3, 4, 6, 8, 2);
        let xs = values(n * c * d * h * w, 1);
        let x = Tensor::from_vec(xs.clone(), (n, c, d, h, w), &dev).unwrap();
        for (axis, shape, dil) in [
            (Axis::Z, (co, 3, 1, 1), 2),
            (Axis::Y, (co, 1, 3, 1), 1),
            (Axis::X, (co, 1, 1, 3), 3),
        ] {
            let ks = values(co * c * 3, 7);
            let conv = ConvAxis {
                weight: Tensor::from_vec(ks.clone(), (co, c, shape.1, shape.2, shape.3), &dev)
                    .unwrap(),
                bias: Tensor::zeros(co, DType::F64, &dev).unwrap(),
                axis,
                dilation: dil,
            };
            let got: Vec<f64> = conv
                .forward(&x, false)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let pad = [
                (shape.1 / 2) * dil,
                (shape.2 / 2) * dil,
                (shape.3 / 2) * dil,
            ];
            let dils = [
                if shape.1 == 3 { dil } else { 1 },
                if shape.2 == 3 { dil } else { 1 },
                if shape.3 == 3 { dil } else { 1 },
            ];
            let (want, _) = conv3d_direct(&xs, (n, c, d, h, w), &ks, shape, 1, pad, dils);
            assert!(max_diff(&got, &want) < 1e-12, "{axis:?}");
        }
        let ks = values(co * c * 27, 3);
        let down = ConvDown {
            weight: Tensor::from_vec(ks.clone(), (co, c, 3, 3, 3), &dev).unwrap(),
            bias: Tensor::zeros(co, DType::F64, &dev).unwrap(),
        };
        let got: Vec<f64> = down
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (want, shape) =
            conv3d_direct(&xs, (n, c, d, h, w), &ks, (co, 3, 3, 3), 2, [1; 3], [1; 3]);
        assert_eq!(shape, [2, 3, 4]);
        assert!(max_diff(&got, &want) < 1e-12);
    }

    /// A transposed convolution is the adjoint of the convolution with the
    /// same kernel: ⟨convT(x), y⟩ = ⟨x, conv(y)⟩ (kernel 3, padding 1 and
    /// kernel 2, padding 0, both stride 2).
    #[test]
    fn transposed_convs_are_the_adjoints_of_the_strided_ones() {
        let dev = Device::Cpu;
        let (n, ci, co, d, h, w) = (1, 2, 3, 2, 3, 4);
        let xs = values(n * ci * d * h * w, 5);
        let x = Tensor::from_vec(xs.clone(), (n, ci, d, h, w), &dev).unwrap();
        for kernel in [3usize, 2] {
            // ConvTranspose3d(ci → co): weight (ci, co, k, k, k)
            let ks = values(ci * co * kernel.pow(3), 11 + kernel as u64);
            let up = ConvTransposeUp {
                weight: Tensor::from_vec(ks.clone(), (ci, co, kernel, kernel, kernel), &dev)
                    .unwrap(),
                bias: Tensor::zeros(co, DType::F64, &dev).unwrap(),
                kernel,
            };
            let out = up.forward(&x).unwrap();
            assert_eq!(out.dims5().unwrap(), (n, co, 2 * d, 2 * h, 2 * w));
            let ys = values(n * co * 8 * d * h * w, 13);
            let lhs: f64 = out
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
                .iter()
                .zip(&ys)
                .map(|(a, b)| a * b)
                .sum();
            // conv(y) from co channels to ci with the same numbers: the
            // kernel's (ci, co, …) read as (out = ci, in = co).
            let kt = &ks;
            let pad = if kernel == 3 { 1 } else { 0 };
            let (conv_y, shape) = conv3d_direct(
                &ys,
                (n, co, 2 * d, 2 * h, 2 * w),
                kt,
                (ci, kernel, kernel, kernel),
                2,
                [pad; 3],
                [1; 3],
            );
            assert_eq!(shape, [d, h, w]);
            let rhs: f64 = conv_y.iter().zip(&xs).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0),
                "kernel {kernel}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn max_pool_takes_each_window_s_maximum_and_sends_the_gradient_to_its_first() {
        let dev = Device::Cpu;
        // One 2×2×4 volume: windows [0..8) and [8..16) in z, y, x order; the
        // second window's maximum (5) appears twice.
        let mut v = vec![0.0f64; 16];
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as f64 * 0.1;
        }
        let at = |z: usize, y: usize, x: usize| (z * 2 + y) * 4 + x;
        v[at(1, 1, 0)] = 9.0; // window 0's maximum
        v[at(0, 0, 3)] = 5.0; // window 1's first maximum (z 0)
        v[at(1, 0, 2)] = 5.0; // and a tie later in z
        let x = candle_core::Var::from_vec(v, (1, 1, 2, 2, 4), &dev).unwrap();
        let y = max_pool_2x2x2(x.as_tensor()).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            vec![9.0, 5.0]
        );
        let g = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f64> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut want = vec![0.0; 16];
        want[at(1, 1, 0)] = 1.0;
        want[at(0, 0, 3)] = 1.0;
        assert_eq!(g, want);
    }
}
