//! EmbedSeg's loss as one CPU op: the value and its gradient with respect to
//! the prediction in a single pass, instances in parallel. Same definition
//! as `embedseg::embedseg_loss_graph` (checked against it and against EmbedSeg).
//!
//! Per image (P pixels; offsets o, sigma σ, seed logit z; e = tanh(o) + xym):
//!   instance k with pixels S (m of them) and centre c:
//!     μ_a = mean_S σ_a, s_a = exp(10 μ_a), φ_j = exp(−Σ_a s_a (e_a,j − c_a)²)
//!     L_k = Σ_j relu(err_j)·w_j, err_j = 1 − sign_j (2φ_j − 1), w the Lovász
//!           weights of the errors sorted in decreasing order
//!     V_k = mean_{a, i∈S} (σ_a,i − μ_a)²
//!   seed = (Σ_bg sigmoid(z)² + fg_w Σ_k Σ_S (sigmoid(z) − φ)²) / P   (φ detached)
//! Gradients: ∂L/∂φ_j = −2 sign_j w_j [err_j > 0]; ∂φ_j/∂e_a = −2 s_a (e_a − c_a) φ_j;
//! ∂φ_j/∂σ_a,i = −(e_a,j − c_a)² φ_j · 10 s_a / m for i ∈ S; ∂V_k/∂σ_a,i = 2(σ_a,i − μ_a)/(n_σ m).
//!
//! Errors are never negative (2 − 2φ inside, 2φ outside), so pixels with zero
//! error sort last and change nothing before them: only the positive ones are
//! sorted. Background pixels with φ < 1e-16 are counted as zero, which keeps
//! that to the instance's surroundings rather than the whole image.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::embedseg::{LossTerms, LossValues, LossWeights};
use super::lovasz::lovasz_weights;
use super::xym::PIXEL;

/// Background pixels with φ below e^−X_FLOOR (1e-16) count as zero error:
/// each changes the loss by less than 1e-16, and skipping them keeps the sort
/// to the instance's surroundings instead of the whole image.
const X_FLOOR: f64 = 36.841;

/// What the op leaves behind for the caller: terms, IoUs and the gradient.
#[derive(Default)]
struct Outputs {
    instance: f64,
    var: f64,
    seed: f64,
    ious: Vec<f64>,
    grad: Vec<f64>,
}

struct EmbedSegLoss {
    labels: Arc<Vec<u32>>,
    centers: Arc<Vec<u32>>,
    n_sigma: usize,
    w: LossWeights,
    out: Arc<Mutex<Outputs>>,
}

/// The loss with its constituents; `total` carries the gradient.
pub fn embedseg_loss_fused(
    prediction: &Tensor,
    labels: &[u32],
    centers: &[u32],
    n_sigma: usize,
    w: &LossWeights,
) -> Result<LossTerms> {
    let device = prediction.device().clone();
    // The op runs on the CPU; elsewhere the prediction travels (with its gradient).
    let on_cpu = prediction
        .to_device(&candle_core::Device::Cpu)?
        .contiguous()?;
    let out = Arc::new(Mutex::new(Outputs::default()));
    let op = EmbedSegLoss {
        labels: Arc::new(labels.to_vec()),
        centers: Arc::new(centers.to_vec()),
        n_sigma,
        w: *w,
        out: out.clone(),
    };
    let total = on_cpu.apply_op1(op)?;
    let value = total
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    let total = total.to_device(&device)?;
    let o = out.lock().expect("loss outputs lock");
    let values = LossValues {
        value,
        instance: o.instance,
        var: o.var,
        seed: o.seed,
    };
    Ok(LossTerms::on_host(total, values, o.ious.clone()))
}

impl CustomOp1 for EmbedSegLoss {
    fn name(&self) -> &'static str {
        "esx-embedseg-loss"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, ch, h, w) = layout.shape().dims4()?;
        let data: Vec<f64> = match storage {
            CpuStorage::F32(v) => v[layout.start_offset()..layout.start_offset() + n * ch * h * w]
                .iter()
                .map(|&x| x as f64)
                .collect(),
            CpuStorage::F64(v) => {
                v[layout.start_offset()..layout.start_offset() + n * ch * h * w].to_vec()
            }
            _ => candle_core::bail!("embedseg loss: f32 or f64 prediction"),
        };
        let p = h * w;
        let per_image: Vec<Image> = (0..n)
            .map(|b| {
                image_loss(
                    &data[b * ch * p..(b + 1) * ch * p],
                    &self.labels[b * p..(b + 1) * p],
                    &self.centers[b * p..(b + 1) * p],
                    w,
                    h,
                    self.n_sigma,
                    &self.w,
                )
            })
            .collect();
        let nb = n as f64;
        let mut o = self.out.lock().expect("loss outputs lock");
        *o = Outputs::default();
        let mut total = 0.0;
        for img in per_image {
            o.instance += img.instance / nb;
            o.var += img.var / nb;
            o.seed += img.seed / nb;
            total += img.total / nb;
            o.ious.extend(img.ious);
            o.grad.extend(img.grad.iter().map(|g| g / nb));
        }
        let storage = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(vec![total as f32]),
            _ => CpuStorage::F64(vec![total]),
        };
        Ok((storage, Shape::from(())))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = self.out.lock().expect("loss outputs lock").grad.clone();
        let grad = Tensor::from_vec(g, arg.shape(), arg.device())?.to_dtype(arg.dtype())?;
        Ok(Some(grad.broadcast_mul(grad_res)?))
    }
}

struct Image {
    instance: f64,
    var: f64,
    seed: f64,
    total: f64,
    ious: Vec<f64>,
    /// ∂total/∂prediction for this image, channel-major like the prediction.
    grad: Vec<f64>,
}

/// One instance's contribution: its loss terms and sparse gradient pieces.
struct Instance {
    lovasz: f64,
    var: f64,
    fg_seed: f64,
    iou: f64,
    /// (pixel, ∂L/∂e_x, ∂L/∂e_y) for pixels whose φ moves the loss.
    emb_grad: Vec<(u32, f64, f64)>,
    /// ∂L/∂s_a summed over pixels (to spread over the instance's sigma).
    ds: [f64; 2],
    /// (pixel, ∂seed_term/∂seed) for the instance's pixels (unnormalised).
    seed_grad: Vec<(u32, f64)>,
    pixels: Vec<u32>,
    mu: [f64; 2],
}

fn image_loss(
    pred: &[f64],
    labels: &[u32],
    centers: &[u32],
    w: usize,
    h: usize,
    n_sigma: usize,
    lw: &LossWeights,
) -> Image {
    let p = w * h;
    let plane = |c: usize| &pred[c * p..(c + 1) * p];
    let (ox, oy) = (plane(0), plane(1));
    let tx: Vec<f64> = ox.iter().map(|v| v.tanh()).collect();
    let ty: Vec<f64> = oy.iter().map(|v| v.tanh()).collect();
    let ex: Vec<f64> = (0..p).map(|i| tx[i] + (i % w) as f64 * PIXEL).collect();
    let ey: Vec<f64> = (0..p).map(|i| ty[i] + (i / w) as f64 * PIXEL).collect();
    let seed: Vec<f64> = plane(2 + n_sigma)
        .iter()
        .map(|&z| 1.0 / (1.0 + (-z).exp()))
        .collect();
    let mut instances: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (i, &v) in labels.iter().enumerate() {
        if v != 0 {
            instances.entry(v).or_default().push(i as u32);
        }
    }
    let results: Vec<Instance> = instances
        .into_values()
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|pixels| instance_loss(pixels, &ex, &ey, pred, &seed, centers, w, p, n_sigma))
        .collect();

    let k = results.len().max(1) as f64;
    let mut grad = vec![0.0f64; (3 + n_sigma) * p];
    // Background seed term: Σ_bg sigmoid(z)².
    let mut seed_sum = 0.0;
    for i in 0..p {
        if labels[i] == 0 {
            seed_sum += seed[i] * seed[i];
            grad[(2 + n_sigma) * p + i] =
                lw.w_seed / p as f64 * 2.0 * seed[i] * seed[i] * (1.0 - seed[i]);
        }
    }
    let (mut lovasz, mut var) = (0.0, 0.0);
    let mut ious = Vec::with_capacity(results.len());
    let (gi, gv) = (lw.w_inst / k, lw.w_var / k);
    for r in &results {
        lovasz += r.lovasz;
        var += r.var;
        seed_sum += lw.foreground_weight * r.fg_seed;
        ious.push(r.iou);
        for &(j, dx, dy) in &r.emb_grad {
            let j = j as usize;
            grad[j] += gi * dx * (1.0 - tx[j] * tx[j]);
            grad[p + j] += gi * dy * (1.0 - ty[j] * ty[j]);
        }
        let m = r.pixels.len() as f64;
        for &i in &r.pixels {
            let i = i as usize;
            for a in 0..n_sigma {
                let sigma = pred[(2 + a) * p + i];
                // Through s_a = exp(10 μ_a) (instance term) and the variance term.
                let from_s = gi * r.ds[a] * 10.0 * (10.0 * r.mu[a]).exp() / m;
                let from_var = gv * 2.0 * (sigma - r.mu[a]) / (n_sigma as f64 * m);
                grad[(2 + a) * p + i] += from_s + from_var;
            }
        }
        for &(i, g) in &r.seed_grad {
            let i = i as usize;
            grad[(2 + n_sigma) * p + i] +=
                lw.w_seed / p as f64 * lw.foreground_weight * g * seed[i] * (1.0 - seed[i]);
        }
    }
    let (instance, var, seed_term) = (lovasz / k, var / k, seed_sum / p as f64);
    Image {
        instance,
        var,
        seed: seed_term,
        total: lw.w_inst * instance + lw.w_var * var + lw.w_seed * seed_term,
        ious,
        grad,
    }
}

#[allow(clippy::too_many_arguments)]
fn instance_loss(
    pixels: Vec<u32>,
    ex: &[f64],
    ey: &[f64],
    pred: &[f64],
    seed: &[f64],
    centers: &[u32],
    w: usize,
    p: usize,
    n_sigma: usize,
) -> Instance {
    let m = pixels.len() as f64;
    // The centre: the single marked pixel, else the mean position (in grid units).
    let marked: Vec<u32> = pixels
        .iter()
        .copied()
        .filter(|&i| centers[i as usize] != 0)
        .collect();
    let (cx, cy) = if marked.len() == 1 {
        let i = marked[0] as usize;
        ((i % w) as f64 * PIXEL, (i / w) as f64 * PIXEL)
    } else {
        // Whole pixels summed exactly, then scaled once: the same numbers
        // as the native loss's instance table (data::instances).
        let sx: u64 = pixels.iter().map(|&i| (i as usize % w) as u64).sum();
        let sy: u64 = pixels.iter().map(|&i| (i as usize / w) as u64).sum();
        (sx as f64 / m * PIXEL, sy as f64 / m * PIXEL)
    };
    let mut mu = [0.0f64; 2];
    let mut var = 0.0;
    for (a, mu_a) in mu.iter_mut().enumerate().take(n_sigma) {
        let sig = &pred[(2 + a) * p..(3 + a) * p];
        *mu_a = pixels.iter().map(|&i| sig[i as usize]).sum::<f64>() / m;
        var += pixels
            .iter()
            .map(|&i| (sig[i as usize] - *mu_a).powi(2))
            .sum::<f64>();
    }
    var /= n_sigma as f64 * m;
    let s = [
        (10.0 * mu[0]).exp(),
        (10.0 * mu[if n_sigma == 2 { 1 } else { 0 }]).exp(),
    ];
    let mut inside = vec![false; p];
    for &i in &pixels {
        inside[i as usize] = true;
    }
    // φ and errors everywhere; keep the pixels with positive error.
    let mut positive: Vec<(f64, u32, f64)> = Vec::new(); // (error, pixel, φ)
    let mut phi_in = vec![0.0f64; pixels.len()];
    let (mut inter, mut union) = (0usize, 0usize);
    for j in 0..p {
        let (dx, dy) = (ex[j] - cx, ey[j] - cy);
        let x = s[0] * dx * dx + s[1] * dy * dy;
        let fg = inside[j];
        if !fg && x > X_FLOOR {
            continue; // φ < 1e-16: an error of ~0 in the tail
        }
        let phi = (-x).exp();
        let err = if fg { 2.0 - 2.0 * phi } else { 2.0 * phi };
        if err > 0.0 {
            positive.push((err, j as u32, phi));
        }
        let pred_in = phi > 0.5;
        inter += usize::from(pred_in && fg);
        union += usize::from(pred_in || fg);
    }
    for (k, &i) in pixels.iter().enumerate() {
        let (dx, dy) = (ex[i as usize] - cx, ey[i as usize] - cy);
        phi_in[k] = (-(s[0] * dx * dx + s[1] * dy * dy)).exp();
    }
    positive.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    // Lovász weights of the sorted labels; the zero-error tail adds nothing.
    let gts = pixels.len();
    let labels_sorted: Vec<bool> = positive.iter().map(|e| inside[e.1 as usize]).collect();
    let weights = lovasz_weights_with_total(&labels_sorted, gts);
    let mut lovasz = 0.0;
    let mut emb_grad = Vec::with_capacity(positive.len());
    let mut ds = [0.0f64; 2];
    for (&(err, j, phi), &wgt) in positive.iter().zip(&weights) {
        lovasz += err * wgt;
        let sign = if inside[j as usize] { 1.0 } else { -1.0 };
        let dl_dphi = -2.0 * sign * wgt;
        if phi == 0.0 || dl_dphi == 0.0 {
            continue;
        }
        let j = j as usize;
        let (dx, dy) = (ex[j] - cx, ey[j] - cy);
        emb_grad.push((
            j as u32,
            dl_dphi * -2.0 * s[0] * dx * phi,
            dl_dphi * -2.0 * s[1] * dy * phi,
        ));
        if n_sigma == 1 {
            ds[0] += dl_dphi * -(dx * dx + dy * dy) * phi;
        } else {
            ds[0] += dl_dphi * -(dx * dx) * phi;
            ds[1] += dl_dphi * -(dy * dy) * phi;
        }
    }
    let mut fg_seed = 0.0;
    let seed_grad = pixels
        .iter()
        .zip(&phi_in)
        .map(|(&i, &phi)| {
            let d = seed[i as usize] - phi;
            fg_seed += d * d;
            (i, 2.0 * d)
        })
        .collect();
    Instance {
        lovasz,
        var,
        fg_seed,
        iou: if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        },
        emb_grad,
        ds,
        seed_grad,
        pixels,
        mu,
    }
}

/// Lovász weights when the foreground count (gts) includes elements not in
/// `gt_sorted` (the zero-error tail): J_i = 1 − (gts − fg_i)/(gts + bg_i).
fn lovasz_weights_with_total(gt_sorted: &[bool], gts: usize) -> Vec<f64> {
    if gt_sorted.iter().filter(|&&g| g).count() == gts {
        return lovasz_weights(gt_sorted);
    }
    let gts = gts as f64;
    let (mut fg, mut bg, mut previous) = (0.0, 0.0, 0.0);
    gt_sorted
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            if g {
                fg += 1.0;
            } else {
                bg += 1.0;
            }
            let jaccard = 1.0 - (gts - fg) / (gts + bg);
            let w = if i == 0 { jaccard } else { jaccard - previous };
            previous = jaccard;
            w
        })
        .collect()
}
