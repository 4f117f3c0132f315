//! Batch norm fused with what follows it in ERFNet:
//!   y = act(γ·x̂ + β)                       (Downsampler, Upsampler, bn1)
//!   y = relu((γ·x̂ + β)·mask + residual)     (bn2 + Dropout2d + residual + ReLU)
//! with x̂ = (x − μ)/√(σ² + ε), μ and σ² the batch statistics over (N, H, W)
//! in training and the running ones in evaluation.
//!
//! Layout: NCHW; γ and β travel as one (2, C) tensor; the dropout mask is a
//! per-(n, c) constant held by the op. Backward (ReLU as PyTorch: zero
//! gradient at 0):
//!   g   = grad·[y > 0]  (or grad without ReLU);  g_res = g;  g_y = g·mask
//!   dβ  = Σ g_y,  dγ = Σ g_y·x̂
//!   dx  = γ/√(σ²+ε) · (g_y − dβ/M − x̂·dγ/M)     (train, M = N·H·W)
//!   dx  = γ/√(σ²+ε) · g_y                         (eval)
//! The batch statistics are handed back through `stats` for the running update.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use num_traits::Zero;
use rayon::prelude::*;

use super::elem::{dispatch, relu, Elem};

/// Batch mean and biased variance of the last training forward, per channel.
pub type Stats = Arc<Mutex<Option<(Vec<f64>, Vec<f64>)>>>;

#[derive(Clone)]
pub struct BnConfig {
    pub eps: f64,
    pub relu: bool,
    /// Some((mean, var)) in evaluation: the running statistics.
    pub running: Option<(Vec<f64>, Vec<f64>)>,
    /// Per (n, c) multipliers (dropout), if any.
    pub mask: Option<Arc<Vec<f64>>>,
    pub stats: Stats,
}

/// y = act(bn(x)); `gb` is cat([γ, β]) of shape (2, C).
pub fn batch_norm_act(x: &Tensor, gb: &Tensor, cfg: BnConfig) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&gb.contiguous()?, BnAct { cfg })
}

/// y = relu(bn(x)·mask + residual).
pub fn batch_norm_add_relu(
    x: &Tensor,
    gb: &Tensor,
    residual: &Tensor,
    cfg: BnConfig,
) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &gb.contiguous()?,
        &residual.contiguous()?,
        BnAddRelu { cfg },
    )
}

/// Per-channel (mean, 1/√(var + eps)) for x of (n, c, hw).
fn channel_stats<T: Elem>(
    x: &[T],
    n: usize,
    c: usize,
    hw: usize,
    cfg: &BnConfig,
) -> (Vec<f64>, Vec<f64>) {
    let (mean, var): (Vec<f64>, Vec<f64>) = match &cfg.running {
        Some((m, v)) => (m.clone(), v.clone()),
        None => (0..c)
            .into_par_iter()
            .map(|ch| {
                let mut sum = 0.0f64;
                for i in 0..n {
                    let s = &x[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                    sum += s.iter().map(|v| v.to_f64().unwrap_or(0.0)).sum::<f64>();
                }
                let m = n * hw;
                let mean = sum / m as f64;
                let mut sq = 0.0f64;
                for i in 0..n {
                    let s = &x[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                    sq += s
                        .iter()
                        .map(|v| (v.to_f64().unwrap_or(0.0) - mean).powi(2))
                        .sum::<f64>();
                }
                (mean, sq / m as f64)
            })
            .unzip(),
    };
    if cfg.running.is_none() {
        *cfg.stats.lock().expect("bn stats lock") = Some((mean.clone(), var.clone()));
    }
    let invstd = var.iter().map(|v| 1.0 / (v + cfg.eps).sqrt()).collect();
    (mean, invstd)
}

fn forward<T: Elem>(
    x: &[T],
    gb: &[T],
    residual: Option<&[T]>,
    shape: &Shape,
    cfg: &BnConfig,
) -> Result<Vec<T>> {
    let (n, c, h, w) = shape.dims4()?;
    let hw = h * w;
    let (mean, invstd) = channel_stats(x, n, c, hw, cfg);
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(hw).enumerate().for_each(|(plane, o)| {
        let (i, ch) = (plane / c, plane % c);
        let gamma = gb[ch].to_f64().unwrap_or(0.0);
        let beta = gb[c + ch].to_f64().unwrap_or(0.0);
        let m = cfg.mask.as_ref().map_or(1.0, |m| m[i * c + ch]);
        let scale = T::from(gamma * invstd[ch] * m).unwrap_or(T::zero());
        let shift = T::from((beta - gamma * invstd[ch] * mean[ch]) * m).unwrap_or(T::zero());
        let src = &x[plane * hw..(plane + 1) * hw];
        match residual {
            Some(r) => {
                let r = &r[plane * hw..(plane + 1) * hw];
                for ((o, &v), &rv) in o.iter_mut().zip(src).zip(r) {
                    *o = relu(v * scale + shift + rv);
                }
            }
            None if cfg.relu => {
                for (o, &v) in o.iter_mut().zip(src) {
                    *o = relu(v * scale + shift);
                }
            }
            None => {
                for (o, &v) in o.iter_mut().zip(src) {
                    *o = v * scale + shift;
                }
            }
        }
    });
    Ok(out)
}

/// (dx, dγβ) from the (already ReLU-gated) gradient g.
fn backward<T: Elem>(
    x: &[T],
    gb: &[T],
    g: &[T],
    shape: &Shape,
    cfg: &BnConfig,
) -> Result<(Vec<T>, Vec<T>)> {
    let (n, c, h, w) = shape.dims4()?;
    let hw = h * w;
    let m = (n * hw) as f64;
    // The statistics the forward pass used (without touching `stats`).
    let quiet = BnConfig {
        stats: Arc::new(Mutex::new(None)),
        ..cfg.clone()
    };
    let (mean, invstd) = channel_stats(x, n, c, hw, &quiet);
    let mask = |i: usize, ch: usize| cfg.mask.as_ref().map_or(1.0, |mk| mk[i * c + ch]);
    // Per channel: Σ g_y and Σ g_y·x̂.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for i in 0..n {
                let mk = mask(i, ch);
                let base = (i * c + ch) * hw;
                for j in 0..hw {
                    let gy = g[base + j].to_f64().unwrap_or(0.0) * mk;
                    let xh = (x[base + j].to_f64().unwrap_or(0.0) - mean[ch]) * invstd[ch];
                    sg += gy;
                    sgx += gy * xh;
                }
            }
            (sg, sgx)
        })
        .collect();
    let mut dx = vec![T::zero(); x.len()];
    let train = cfg.running.is_none();
    dx.par_chunks_mut(hw).enumerate().for_each(|(plane, d)| {
        let (i, ch) = (plane / c, plane % c);
        let k = gb[ch].to_f64().unwrap_or(0.0) * invstd[ch];
        let mk = mask(i, ch);
        let (sg, sgx) = sums[ch];
        let base = plane * hw;
        for (j, dv) in d.iter_mut().enumerate() {
            let gy = g[base + j].to_f64().unwrap_or(0.0) * mk;
            let v = if train {
                let xh = (x[base + j].to_f64().unwrap_or(0.0) - mean[ch]) * invstd[ch];
                k * (gy - sg / m - xh * sgx / m)
            } else {
                k * gy
            };
            *dv = T::from(v).unwrap_or(T::zero());
        }
    });
    let mut dgb = vec![T::zero(); 2 * c];
    for ch in 0..c {
        dgb[ch] = T::from(sums[ch].1).unwrap_or(T::zero());
        dgb[c + ch] = T::from(sums[ch].0).unwrap_or(T::zero());
    }
    Ok((dx, dgb))
}

/// dx and dγβ through the BnBackward op.
fn bn_grads(x: &Tensor, gb: &Tensor, g: &Tensor, cfg: &BnConfig) -> Result<(Tensor, Tensor)> {
    let packed = x.apply_op3_no_bwd(gb, g, &BnBackward { cfg: cfg.clone() })?;
    let n = x.elem_count();
    let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
    let dgb = packed.narrow(0, n, gb.elem_count())?.reshape(gb.shape())?;
    Ok((dx, dgb))
}

struct BnAct {
    cfg: BnConfig,
}

impl CustomOp2 for BnAct {
    fn name(&self) -> &'static str {
        "esx-batch-norm-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, self.name(), T => {
            let out = forward::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, None, l1.shape(), &self.cfg)?;
            Ok((T::into_storage(out), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        gb: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = if self.cfg.relu {
            relu_gate(grad, res)?
        } else {
            grad.contiguous()?
        };
        let (dx, dgb) = bn_grads(x, gb, &g, &self.cfg)?;
        Ok((Some(dx), Some(dgb)))
    }
}

struct BnAddRelu {
    cfg: BnConfig,
}

impl CustomOp3 for BnAddRelu {
    fn name(&self) -> &'static str {
        "esx-batch-norm-add-relu"
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
        dispatch!(s1, self.name(), T => {
            let out = forward::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, Some(T::slice(s3, l3)?), l1.shape(), &self.cfg)?;
            Ok((T::into_storage(out), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        gb: &Tensor,
        _r: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = relu_gate(grad, res)?;
        let (dx, dgb) = bn_grads(x, gb, &g, &self.cfg)?;
        Ok((Some(dx), Some(dgb), Some(g)))
    }
}

/// Inputs x, γβ, g (gated gradient); output cat([dx, dγβ]) flattened.
struct BnBackward {
    cfg: BnConfig,
}

impl CustomOp3 for BnBackward {
    fn name(&self) -> &'static str {
        "esx-batch-norm-backward"
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
        dispatch!(s1, self.name(), T => {
            let (mut dx, dgb) = backward::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, T::slice(s3, l3)?, l1.shape(), &self.cfg)?;
            dx.extend(dgb);
            let len = dx.len();
            Ok((T::into_storage(dx), Shape::from(len)))
        })
    }
}

/// grad · [output > 0]: a ReLU's backward from its output (0 at 0, as PyTorch).
pub fn relu_gate(grad: &Tensor, output: &Tensor) -> Result<Tensor> {
    grad.contiguous()?
        .apply_op2_no_bwd(&output.contiguous()?, &ReluGate)
}

struct ReluGate;

impl CustomOp2 for ReluGate {
    fn name(&self) -> &'static str {
        "esx-relu-gate"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, self.name(), T => {
            let (g, y) = (T::slice(s1, l1)?, T::slice(s2, l2)?);
            let out: Vec<T> = g.par_iter().zip(y).map(|(&g, &y)| if y > T::zero() { g } else { T::zero() }).collect();
            Ok((T::into_storage(out), l1.shape().clone()))
        })
    }
}

/// Per-channel sums of an NCHW tensor: (C). A bias gradient.
pub fn channel_sum(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&ChannelSum)
}

struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "esx-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let hw = h * w;
        dispatch!(s, self.name(), T => {
            let x = T::slice(s, l)?;
            let sums: Vec<T> = (0..c)
                .into_par_iter()
                .map(|ch| {
                    (0..n).map(|i| x[(i * c + ch) * hw..(i * c + ch + 1) * hw].iter().copied().sum::<T>()).sum()
                })
                .collect();
            Ok((T::into_storage(sums), Shape::from(c)))
        })
    }
}
