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

use std::sync::{Arc, Mutex, OnceLock};

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};
use num_traits::Zero;
use rayon::prelude::*;

use super::elem::{dispatch, filled_planes, relu, Elem};
use super::sums::{map_and_sums, plane_sum};

/// Batch mean and biased variance of the last training forward, per channel.
pub type Stats = Arc<Mutex<Option<(Vec<f64>, Vec<f64>)>>>;

/// Per channel (μ, σ²).
type Stats2 = (Vec<f64>, Vec<f64>);

/// Per channel (μ, 1/√(σ² + ε)) as a forward pass used them, kept by its op
/// for the backward.
type Norm = (Vec<f64>, Vec<f64>);

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

impl BnConfig {
    fn mask(&self, plane: usize) -> f64 {
        self.mask.as_ref().map_or(1.0, |m| m[plane])
    }
}

/// y = act(bn(x)); `gb` is cat([γ, β]) of shape (2, C).
pub fn batch_norm_act(x: &Tensor, gb: &Tensor, cfg: BnConfig) -> Result<Tensor> {
    let op = BnAct {
        cfg,
        norm: OnceLock::new(),
    };
    x.contiguous()?.apply_op2(&gb.contiguous()?, op)
}

/// y = relu(bn(x)·mask + residual).
pub fn batch_norm_add_relu(
    x: &Tensor,
    gb: &Tensor,
    residual: &Tensor,
    cfg: BnConfig,
) -> Result<Tensor> {
    let op = BnAddRelu {
        cfg,
        norm: OnceLock::new(),
    };
    x.contiguous()?
        .apply_op3(&gb.contiguous()?, &residual.contiguous()?, op)
}

/// Σ over the images of f(plane) for each channel: the planes in parallel,
/// each channel's added in image order (the same result whatever the timing).
fn per_channel(n: usize, c: usize, f: impl Fn(usize) -> f64 + Sync) -> Vec<f64> {
    let planes: Vec<f64> = (0..n * c).into_par_iter().map(&f).collect();
    (0..c)
        .map(|ch| (0..n).map(|i| planes[i * c + ch]).sum())
        .collect()
}

fn elem<T: Elem>(v: f64) -> T {
    T::from(v).unwrap_or(T::zero())
}

/// The batch's mean and biased variance per channel of x of (n, c, hw), in
/// two passes (the mean, then the squared deviations from it), or the
/// running statistics.
fn channel_stats<T: Elem>(x: &[T], n: usize, c: usize, hw: usize, cfg: &BnConfig) -> Stats2 {
    if let Some(running) = &cfg.running {
        return running.clone();
    }
    let plane = |p: usize| &x[p * hw..(p + 1) * hw];
    let count = (n * hw) as f64;
    let sums = per_channel(n, c, |p| plane_sum(plane(p), |v| v));
    let mean: Vec<f64> = sums.iter().map(|s| s / count).collect();
    let squares = per_channel(n, c, |p| {
        let mu = elem::<T>(mean[p % c]);
        plane_sum(plane(p), move |v| (v - mu) * (v - mu))
    });
    (mean, squares.iter().map(|s| s / count).collect())
}

fn norm_of((mean, var): Stats2, eps: f64) -> Norm {
    let invstd = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    (mean, invstd)
}

/// The forward's normalisation, kept in `slot` for the backward; the batch
/// statistics also go to `stats` for the running update.
fn forward_norm<'a, T: Elem>(
    slot: &'a OnceLock<Norm>,
    x: &[T],
    shape: &Shape,
    cfg: &BnConfig,
) -> Result<&'a Norm> {
    if let Some(norm) = slot.get() {
        return Ok(norm);
    }
    let (n, c, h, w) = shape.dims4()?;
    let stats = channel_stats(x, n, c, h * w, cfg);
    if cfg.running.is_none() {
        *cfg.stats.lock().expect("bn stats lock") = Some(stats.clone());
    }
    Ok(slot.get_or_init(|| norm_of(stats, cfg.eps)))
}

fn forward<T: Elem>(
    x: &[T],
    gb: &[T],
    residual: Option<&[T]>,
    shape: &Shape,
    cfg: &BnConfig,
    (mean, invstd): &Norm,
) -> Result<Vec<T>> {
    let (_, c, h, w) = shape.dims4()?;
    let hw = h * w;
    let out = filled_planes(x.len(), hw, |plane, o| {
        let ch = plane % c;
        let gamma = gb[ch].to_f64().unwrap_or(0.0);
        let beta = gb[c + ch].to_f64().unwrap_or(0.0);
        let m = cfg.mask(plane);
        let scale = elem::<T>(gamma * invstd[ch] * m);
        let shift = elem::<T>((beta - gamma * invstd[ch] * mean[ch]) * m);
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

/// The backward of one batch norm from the incoming gradient and, where a
/// ReLU follows, the forward's output y (g = grad·[y > 0]).
struct BnBackward {
    cfg: BnConfig,
    norm: Norm,
    /// γ per channel.
    gamma: Vec<f64>,
    /// Whether g itself is an output (the residual's gradient; that op
    /// always ends in a ReLU, so the gradient is gated).
    keep_gate: bool,
}

impl BnBackward {
    /// cat([dx, g if kept, dγ, dβ]), flat.
    fn run<T: Elem>(&self, x: &[T], grad: &[T], y: &[T], shape: &Shape) -> Result<Vec<T>> {
        let (n, c, h, w) = shape.dims4()?;
        let (hw, len) = (h * w, x.len());
        let (mean, invstd) = &self.norm;
        let mut out = vec![T::zero(); len * (1 + usize::from(self.keep_gate)) + 2 * c];
        let (dx, rest) = out.split_at_mut(len);
        let (kept, dgb) = rest.split_at_mut(len * usize::from(self.keep_gate));
        let gated: &mut [T] = if self.keep_gate { &mut *kept } else { &mut *dx };
        // Pass 1, per plane: g, Σ g and Σ g·(x − μ).
        let planes: Vec<(f64, f64)> = gated
            .par_chunks_mut(hw)
            .enumerate()
            .map(|(p, g)| {
                let span = p * hw..(p + 1) * hw;
                let (grad, y, x) = (&grad[span.clone()], &y[span.clone()], &x[span]);
                let mu = elem::<T>(mean[p % c]);
                let centred = move |v: T| v - mu;
                let (s, sx) = if self.cfg.relu || self.keep_gate {
                    let gate = |g: T, y: T| if y > T::zero() { g } else { T::zero() };
                    map_and_sums(grad, y, x, g, gate, centred)
                } else {
                    map_and_sums(grad, y, x, g, |g, _| g, centred)
                };
                let mk = self.cfg.mask(p);
                (s * mk, sx * mk)
            })
            .collect();
        // Per channel: Σ g_y and Σ g_y·x̂, images in order.
        let sums: Vec<(f64, f64)> = (0..c)
            .map(|ch| {
                let (s, sx) = (0..n).fold((0.0, 0.0), |(a, b), i| {
                    (a + planes[i * c + ch].0, b + planes[i * c + ch].1)
                });
                (s, sx * invstd[ch])
            })
            .collect();
        // Pass 2: dx = k·(g_y − Σg_y/M − x̂·Σg_y x̂/M), k = γ/√(σ²+ε).
        let count = (n * hw) as f64;
        let train = self.cfg.running.is_none();
        let coefficients = |p: usize| {
            let ch = p % c;
            let k = self.gamma[ch] * invstd[ch];
            let (s, sxh) = sums[ch];
            let (b, c0) = if train {
                (-k * invstd[ch] * sxh / count, -k * s / count)
            } else {
                (0.0, 0.0)
            };
            let mu = elem::<T>(mean[ch]);
            (
                elem::<T>(k * self.cfg.mask(p)),
                elem::<T>(b),
                elem::<T>(c0),
                mu,
            )
        };
        let plane_x = |p: usize| &x[p * hw..(p + 1) * hw];
        if self.keep_gate {
            let kept = &*kept;
            dx.par_chunks_mut(hw)
                .zip(kept.par_chunks(hw))
                .enumerate()
                .for_each(|(p, (d, g))| {
                    let (a, b, c0, mu) = coefficients(p);
                    for ((d, &g), &x) in d.iter_mut().zip(g).zip(plane_x(p)) {
                        *d = a * g + b * (x - mu) + c0;
                    }
                });
        } else {
            dx.par_chunks_mut(hw).enumerate().for_each(|(p, d)| {
                let (a, b, c0, mu) = coefficients(p);
                for (d, &x) in d.iter_mut().zip(plane_x(p)) {
                    *d = a * *d + b * (x - mu) + c0;
                }
            });
        }
        for (ch, &(s, sxh)) in sums.iter().enumerate() {
            dgb[ch] = elem(sxh);
            dgb[c + ch] = elem(s);
        }
        Ok(out)
    }

    /// (dx, [g,] dγβ) from the op's flat output.
    fn apply(&self, x: &Tensor, grad: &Tensor, y: &Tensor) -> Result<Vec<Tensor>> {
        let packed = x.apply_op3_no_bwd(&grad.contiguous()?, &y.contiguous()?, self)?;
        let (len, c) = (x.elem_count(), self.gamma.len());
        let mut parts = vec![packed.narrow(0, 0, len)?.reshape(x.shape())?];
        if self.keep_gate {
            parts.push(packed.narrow(0, len, len)?.reshape(x.shape())?);
        }
        // dγβ gets its own storage (force_contiguous copies; copy() would
        // clone the whole buffer): it lives until the optimiser's step, and
        // a view would keep this buffer alive until then (+25 % peak RSS).
        let at = len * parts.len();
        parts.push(
            packed
                .narrow(0, at, 2 * c)?
                .reshape((2, c))?
                .force_contiguous()?,
        );
        Ok(parts)
    }
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
            let out = self.run::<T>(T::slice(s1, l1)?, T::slice(s2, l2)?, T::slice(s3, l3)?, l1.shape())?;
            let len = out.len();
            Ok((T::into_storage(out), Shape::from(len)))
        })
    }
}

/// The backward op for a forward that normalised with `norm` (recomputed
/// from x if the forward kept none).
fn backward_op(
    cfg: &BnConfig,
    norm: &OnceLock<Norm>,
    x: &Tensor,
    gb: &Tensor,
    keep_gate: bool,
) -> Result<BnBackward> {
    let norm = match norm.get() {
        Some(norm) => norm.clone(),
        None => {
            let (n, c, h, w) = x.dims4()?;
            let host = x.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            norm_of(channel_stats(&host, n, c, h * w, cfg), cfg.eps)
        }
    };
    Ok(BnBackward {
        cfg: cfg.clone(),
        norm,
        gamma: gb.get(0)?.to_dtype(DType::F64)?.to_vec1()?,
        keep_gate,
    })
}

struct BnAct {
    cfg: BnConfig,
    norm: OnceLock<Norm>,
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
            let x = T::slice(s1, l1)?;
            let norm = forward_norm(&self.norm, x, l1.shape(), &self.cfg)?;
            let out = forward::<T>(x, T::slice(s2, l2)?, None, l1.shape(), &self.cfg, norm)?;
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
        let op = backward_op(&self.cfg, &self.norm, x, gb, false)?;
        // Without a ReLU there is no gate: y is not read.
        let y = if self.cfg.relu { res } else { grad };
        let mut parts = op.apply(x, grad, y)?.into_iter();
        Ok((parts.next(), parts.next()))
    }
}

struct BnAddRelu {
    cfg: BnConfig,
    norm: OnceLock<Norm>,
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
            let x = T::slice(s1, l1)?;
            let norm = forward_norm(&self.norm, x, l1.shape(), &self.cfg)?;
            let out = forward::<T>(x, T::slice(s2, l2)?, Some(T::slice(s3, l3)?), l1.shape(), &self.cfg, norm)?;
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
        let op = backward_op(&self.cfg, &self.norm, x, gb, true)?;
        let mut parts = op.apply(x, grad, res)?.into_iter();
        let (dx, g, dgb) = (parts.next(), parts.next(), parts.next());
        Ok((dx, dgb, g))
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
            let sums = per_channel(n, c, |p| plane_sum(&x[p * hw..(p + 1) * hw], |v| v));
            let sums: Vec<T> = sums.into_iter().map(elem).collect();
            Ok((T::into_storage(sums), Shape::from(c)))
        })
    }
}
