//! ERFNet's building layers: convolutions, batch norm with PyTorch's running
//! statistics, channel dropout, and 2×2 max pooling with PyTorch's gradient
//! (to the first maximum of each window). Each layer runs the kernels of the
//! `Backend` it was built with: the fused CPU ops, or candle's own ops.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ops::{
    self, batch_norm_act, batch_norm_add_relu, conv2d, conv_transpose2d, BnConfig, Geom,
};
use crate::backend::Backend;

/// How a forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics (and running-statistics updates) and channel dropout.
    Train,
    /// Training without dropout: for comparisons with a reference.
    TrainNoDropout,
    /// Running statistics, no dropout.
    Eval,
}

impl Mode {
    pub fn is_train(self) -> bool {
        self != Mode::Eval
    }
}

/// Where a layer gets its parameters (`weight`, `bias`) and buffers
/// (`running_mean`, …), and the kernels it runs.
pub struct Builders<'a> {
    pub params: VarBuilder<'a>,
    pub buffers: VarBuilder<'a>,
    pub buffer_map: &'a candle_nn::VarMap,
    pub backend: Backend,
}

impl<'a> Builders<'a> {
    pub fn pp(&self, name: impl ToString) -> Builders<'a> {
        let name = name.to_string();
        Builders {
            params: self.params.pp(&name),
            buffers: self.buffers.pp(&name),
            buffer_map: self.buffer_map,
            backend: self.backend,
        }
    }

    /// Parameters start at zero; `Weights::init_pytorch` gives them their
    /// seeded PyTorch initialisation once the model is built.
    fn param(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        self.params.get_with_hints(shape, name, Init::Const(0.0))
    }

    fn buffer(&self, shape: usize, name: &str, value: f64) -> Result<Var> {
        self.buffers
            .get_with_hints(shape, name, Init::Const(value))?;
        let path = format!("{}.{name}", self.buffers.prefix());
        let map = self.buffer_map.data().lock().expect("buffer map lock");
        Ok(map.get(&path).expect("the buffer was just created").clone())
    }
}

pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    geom: Geom,
    backend: Backend,
}

impl Conv {
    pub fn new(b: &Builders, cin: usize, cout: usize, geom: Geom) -> Result<Conv> {
        Ok(Conv {
            weight: b.param(&[cout, cin, geom.kh, geom.kw], "weight")?,
            bias: b.param(&[cout], "bias")?,
            geom,
            backend: b.backend,
        })
    }

    /// conv(x) + bias, then ReLU if `relu`.
    pub fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        if self.backend == Backend::Fused {
            return conv2d(x, &self.weight, &self.bias, self.geom, relu);
        }
        let g = self.geom;
        if super::device_conv::runs_on(x.device()) {
            let y = super::device_conv::conv2d(x, &self.weight, g)?
                .broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let (mut x, mut pad, mut dil) = (x.clone(), g.ph, g.dh);
        if g.ph != g.pw || g.dh != g.dw {
            // candle takes one padding and dilation: pad by hand; the other
            // kernel axis is 1, so one dilation serves.
            assert!(
                g.kh == 1 || g.kw == 1,
                "asymmetric geometry needs a 1-wide kernel"
            );
            x = x
                .pad_with_zeros(2, g.ph, g.ph)?
                .pad_with_zeros(3, g.pw, g.pw)?;
            pad = 0;
            dil = g.dh.max(g.dw);
        }
        let y = x
            .conv2d(&self.weight, pad, g.sh, dil, 1)?
            .broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

impl Conv {
    /// This convolution followed by `bn` in eval mode, as one convolution:
    /// each output channel's weights and bias scaled and shifted.
    pub fn fold(&self, bn: &BatchNorm) -> Result<Conv> {
        let (weight, bias) = fold(&self.weight, &self.bias, bn, (self.weight.dim(0)?, 1, 1, 1))?;
        Ok(Conv {
            weight,
            bias,
            geom: self.geom,
            backend: self.backend,
        })
    }

    /// relu(conv(x) + bias + residual): a residual block's end.
    pub fn forward_residual_relu(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if self.backend == Backend::Fused {
            let bias: Vec<f64> = self.bias.to_dtype(DType::F64)?.to_vec1()?;
            return ops::conv2d_residual_relu(x, &self.weight, &bias, residual, self.geom);
        }
        (self.forward(x, false)? + residual)?.relu()
    }
}

/// Weights and bias of a convolution followed by an eval-mode batch norm,
/// its per-output-channel scale broadcast as `scale_shape`.
fn fold(
    weight: &Tensor,
    bias: &Tensor,
    bn: &BatchNorm,
    scale_shape: (usize, usize, usize, usize),
) -> Result<(Tensor, Tensor)> {
    let (scale, shift) = bn.affine()?;
    let b: Vec<f64> = bias.to_dtype(DType::F64)?.to_vec1()?;
    let folded_bias: Vec<f64> = b
        .iter()
        .zip(&scale)
        .zip(&shift)
        .map(|((b, s), t)| b * s + t)
        .collect();
    let (dev, dtype) = (weight.device(), weight.dtype());
    let scale = Tensor::from_vec(scale, scale_shape, dev)?.to_dtype(dtype)?;
    let n = folded_bias.len();
    Ok((
        weight.broadcast_mul(&scale)?.detach(),
        Tensor::from_vec(folded_bias, n, dev)?
            .to_dtype(dtype)?
            .detach(),
    ))
}

/// PyTorch's ConvTranspose2d: weight (Cin, Cout, K, K).
pub struct ConvTranspose {
    weight: Tensor,
    bias: Tensor,
    geom: Geom,
    output_padding: usize,
    backend: Backend,
}

impl ConvTranspose {
    pub fn new(
        b: &Builders,
        cin: usize,
        cout: usize,
        geom: Geom,
        output_padding: usize,
    ) -> Result<ConvTranspose> {
        Ok(ConvTranspose {
            weight: b.param(&[cin, cout, geom.kh, geom.kw], "weight")?,
            bias: b.param(&[cout], "bias")?,
            geom,
            output_padding,
            backend: b.backend,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, false)
    }

    /// The transposed convolution, then ReLU if `relu`.
    pub fn forward_act(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        if self.backend == Backend::Fused {
            return conv_transpose2d(
                x,
                &self.weight,
                &self.bias,
                self.geom,
                self.output_padding,
                relu,
            );
        }
        let g = self.geom;
        let y = if super::device_conv::runs_on(x.device()) {
            super::device_conv::conv_transpose2d(x, &self.weight, g, self.output_padding)?
        } else {
            x.conv_transpose2d(&self.weight, g.ph, self.output_padding, g.sh, 1)?
        }
        .broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// This transposed convolution followed by `bn` in eval mode, as one.
    pub fn fold(&self, bn: &BatchNorm) -> Result<ConvTranspose> {
        let (weight, bias) = fold(&self.weight, &self.bias, bn, (1, self.weight.dim(1)?, 1, 1))?;
        Ok(ConvTranspose {
            weight,
            bias,
            geom: self.geom,
            output_padding: self.output_padding,
            backend: self.backend,
        })
    }
}

/// BatchNorm2d (momentum 0.1, unbiased running variance, as PyTorch), fused
/// with the activation, dropout and residual that follow it in ERFNet.
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    backend: Backend,
}

const MOMENTUM: f64 = 0.1;

impl BatchNorm {
    pub fn new(b: &Builders, channels: usize, eps: f64) -> Result<BatchNorm> {
        Ok(BatchNorm {
            weight: b
                .params
                .get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: b
                .params
                .get_with_hints(channels, "bias", Init::Const(0.0))?,
            running_mean: b.buffer(channels, "running_mean", 0.0)?,
            running_var: b.buffer(channels, "running_var", 1.0)?,
            eps,
            backend: b.backend,
        })
    }

    /// bn(x), then ReLU if `relu`.
    pub fn forward(&self, x: &Tensor, mode: Mode, relu: bool) -> Result<Tensor> {
        if self.backend == Backend::Fused {
            let cfg = self.config(mode, relu, None)?;
            let y = batch_norm_act(x, &self.gamma_beta()?, cfg.clone())?;
            self.update_running(&cfg, x)?;
            return Ok(y);
        }
        let y = self.native(x, mode)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// relu(bn(x)·mask + residual), mask a per-(n, c) dropout multiplier.
    pub fn forward_add_relu(
        &self,
        x: &Tensor,
        residual: &Tensor,
        mode: Mode,
        mask: Option<Vec<f64>>,
    ) -> Result<Tensor> {
        if self.backend == Backend::Fused {
            let cfg = self.config(mode, true, mask)?;
            let y = batch_norm_add_relu(x, &self.gamma_beta()?, residual, cfg.clone())?;
            self.update_running(&cfg, x)?;
            return Ok(y);
        }
        let mut y = self.native(x, mode)?;
        if let Some(m) = mask {
            let (n, c, _, _) = x.dims4()?;
            let m = Tensor::from_vec(m, (n, c, 1, 1), x.device())?.to_dtype(x.dtype())?;
            y = y.broadcast_mul(&m)?;
        }
        (y + residual)?.relu()
    }

    /// Eval mode as y = x·scale + shift per channel.
    pub fn affine(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let host = |t: &Tensor| -> Result<Vec<f64>> { t.to_dtype(DType::F64)?.to_vec1() };
        let (gamma, beta) = (host(&self.weight)?, host(&self.bias)?);
        let mean = host(self.running_mean.as_tensor())?;
        let var = host(self.running_var.as_tensor())?;
        let scale: Vec<f64> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + self.eps).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok((scale, shift))
    }

    fn gamma_beta(&self) -> Result<Tensor> {
        Tensor::stack(&[&self.weight, &self.bias], 0)
    }

    fn config(&self, mode: Mode, relu: bool, mask: Option<Vec<f64>>) -> Result<BnConfig> {
        let host = |v: &Var| -> Result<Vec<f64>> { v.as_tensor().to_dtype(DType::F64)?.to_vec1() };
        Ok(BnConfig {
            eps: self.eps,
            relu,
            running: if mode.is_train() {
                None
            } else {
                Some((host(&self.running_mean)?, host(&self.running_var)?))
            },
            mask: mask.map(Arc::new),
            stats: Arc::new(Mutex::new(None)),
        })
    }

    fn update_running(&self, cfg: &BnConfig, x: &Tensor) -> Result<()> {
        let Some((mean, var)) = cfg.stats.lock().expect("bn stats lock").take() else {
            return Ok(());
        };
        let (n, _, h, w) = x.dims4()?;
        let count = (n * h * w) as f64;
        let unbiased: Vec<f64> = var
            .iter()
            .map(|v| v * count / (count - 1.0).max(1.0))
            .collect();
        let c = mean.len();
        let blend = |old: &Var, new: Vec<f64>| -> Result<()> {
            let new = Tensor::from_vec(new, c, old.device())?.to_dtype(old.dtype())?;
            old.set(&((old.as_tensor() * (1.0 - MOMENTUM))? + (new * MOMENTUM)?)?)
        };
        blend(&self.running_mean, mean)?;
        blend(&self.running_var, unbiased)
    }

    /// Batch norm from candle's ops.
    fn native(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        let per_channel = |t: &Tensor| t.reshape((1, c, 1, 1));
        let (mean, var) = if mode.is_train() {
            let (n, _, h, w) = x.dims4()?;
            let mean = x.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
            let var = x
                .broadcast_sub(&mean)?
                .sqr()?
                .mean_keepdim(0)?
                .mean_keepdim(2)?
                .mean_keepdim(3)?;
            let count = (n * h * w) as f64;
            let unbiased = (var.detach().flatten_all()? * (count / (count - 1.0).max(1.0)))?;
            let rm = ((self.running_mean.as_tensor() * (1.0 - MOMENTUM))?
                + (mean.detach().flatten_all()? * MOMENTUM)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - MOMENTUM))? + (unbiased * MOMENTUM)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            (mean, var)
        } else {
            (
                per_channel(self.running_mean.as_tensor())?,
                per_channel(self.running_var.as_tensor())?,
            )
        };
        let scale = per_channel(&self.weight)?.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        x.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&per_channel(&self.bias)?)
    }
}

/// Every decoder's output on one feature map, concatenated along channels
/// (BranchedERFNet's heads, 2D and 3D).
pub fn branches<T>(
    decoders: &[T],
    features: &Tensor,
    forward: impl Fn(&T, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let outs = decoders
        .iter()
        .map(|d| forward(d, features))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&outs, 1)
}

/// Dropout2d's per-(n, c) multipliers: 0 with probability p, else 1/(1−p).
pub fn dropout_mask(n: usize, c: usize, p: f64, rng: &Mutex<ChaCha8Rng>) -> Vec<f64> {
    let mut rng = rng.lock().expect("dropout rng lock");
    let keep = 1.0 / (1.0 - p);
    (0..n * c)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect()
}

/// 2×2 max pooling, stride 2, on even sizes, with PyTorch's gradient (to the
/// first maximum of each window; candle's own max_pool2d spreads it).
pub fn max_pool2x2(x: &Tensor, backend: Backend) -> Result<Tensor> {
    if backend == Backend::Fused {
        return ops::max_pool2x2(x);
    }
    let (n, c, h, w) = x.dims4()?;
    let windows = x
        .reshape((n, c, h / 2, 2, w / 2, 2))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((n, c, h / 2, w / 2, 4))?;
    let first_max = windows.argmax_keepdim(D::Minus1)?;
    windows.gather(&first_max, D::Minus1)?.squeeze(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn max_pool_takes_the_first_maximum_and_routes_its_gradient() {
        // One window of four zeros (a ReLU's usual tie) and one with a clear maximum.
        for backend in [Backend::Fused, Backend::Native] {
            let x = Var::from_vec(
                vec![0.0f64, 0.0, 1.0, 3.0, 0.0, 0.0, 2.0, -1.0],
                (1, 1, 2, 4),
                &Device::Cpu,
            )
            .unwrap();
            let g = {
                let y = max_pool2x2(&x, backend).unwrap();
                assert_eq!(
                    y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                    vec![0.0, 3.0]
                );
                y.sum_all().unwrap().backward().unwrap()
            };
            let gx = g
                .get(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            assert_eq!(
                gx,
                vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                "{backend:?}"
            );
        }
    }

    #[test]
    fn dropout_masks_whole_channels() {
        let rng = Mutex::new(rand::SeedableRng::seed_from_u64(1));
        let m = dropout_mask(2, 50, 0.3, &rng);
        let zeros = m.iter().filter(|&&v| v == 0.0).count();
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-12));
        assert!(
            (15..45).contains(&zeros),
            "{zeros} of 100 channels dropped at p = 0.3"
        );
    }
}
