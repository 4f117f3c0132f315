//! EmbedSeg's SpatialEmbLoss (criterions/my_loss.py), 2D, and
//! SpatialEmbLoss_3d (my_loss_3d.py), written with candle's ops as EmbedSeg
//! writes them with torch's: the readable reference that the fused op in
//! fused.rs (which training uses) is checked against. In 3D the grid has a
//! third channel, z, whose spacing is the anisotropy times that of y and x.
//!
//! Per image: embeddings e = tanh(offset) + xym; for each instance with
//! pixels S and centre c (its marked centre pixel when exactly one lies in
//! S, else the mean of S), s = exp(10·mean_S σ) and φ = exp(−Σ_axes s·(e − c)²)
//! over the whole image. Terms: instance = mean over instances of
//! lovasz_hinge(2φ − 1, S); variance = mean over instances of
//! mean_S (σ − mean_S σ (detached))²; seed = (Σ_bg seed² + fg_weight ·
//! Σ_instances Σ_S (seed − φ (detached))²) / (H·W). Total = w_inst·instance +
//! w_var·variance + w_seed·seed, averaged over the batch.

use std::collections::BTreeMap;

use candle_core::{DType, Result, Tensor};

use super::lovasz::lovasz_hinge;
use super::xym::{xym, xyzm};

#[derive(Clone, Copy, Debug)]
pub struct LossWeights {
    pub w_inst: f64,
    pub w_var: f64,
    pub w_seed: f64,
    pub foreground_weight: f64,
}

impl LossWeights {
    pub fn from_config(c: &crate::config::LossConfig) -> LossWeights {
        LossWeights {
            w_inst: c.w_inst,
            w_var: c.w_var,
            w_seed: c.w_seed,
            foreground_weight: c.foreground_weight,
        }
    }
}

/// The loss and its constituents (batch means of the unweighted terms).
pub struct LossTerms {
    /// The loss, carrying its gradient.
    pub total: Tensor,
    scalars: Scalars,
    /// Per instance IoU of φ > 0.5 with its mask (EmbedSeg's validation IoU).
    pub ious: Vec<f64>,
}

/// The loss's value and its three terms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossValues {
    pub value: f64,
    pub instance: f64,
    pub var: f64,
    pub seed: f64,
}

/// Where the values are: on the host, or still on the device as one
/// detached tensor [total, instance, var, seed].
enum Scalars {
    Host(LossValues),
    Device(Tensor),
}

impl LossTerms {
    /// Terms whose values the host already has.
    pub fn on_host(total: Tensor, values: LossValues, ious: Vec<f64>) -> LossTerms {
        LossTerms {
            total,
            scalars: Scalars::Host(values),
            ious,
        }
    }

    /// Terms whose values stay on the device until asked for: reading them
    /// waits for the device, so a training step reads them after its
    /// optimiser step, not between the loss and the backward pass.
    pub fn on_device(total: Tensor, stacked: Tensor, ious: Vec<f64>) -> LossTerms {
        LossTerms {
            total,
            scalars: Scalars::Device(stacked),
            ious,
        }
    }

    /// The values (one transfer from the device where they are there).
    pub fn values(&self) -> Result<LossValues> {
        match &self.scalars {
            Scalars::Host(v) => Ok(*v),
            Scalars::Device(t) => {
                let v: Vec<f64> = t.to_dtype(DType::F64)?.to_vec1()?;
                Ok(LossValues {
                    value: v[0],
                    instance: v[1],
                    var: v[2],
                    seed: v[3],
                })
            }
        }
    }
}

/// `prediction` is (N, 3 + n_sigma, H, W); `labels` and `centers` are N·H·W
/// instance ids (0 background; any non-zero value in `centers` marks a centre).
pub fn embedseg_loss_graph(
    prediction: &Tensor,
    labels: &[u32],
    centers: &[u32],
    n_sigma: usize,
    w: &LossWeights,
) -> Result<LossTerms> {
    let (n, ch, h, wd) = prediction.dims4()?;
    let grid = xym(h, wd, prediction.dtype(), prediction.device())?; // (2, HW)
    loss_over_grid(
        &prediction.reshape((n, ch, h * wd))?,
        &grid,
        labels,
        centers,
        n_sigma,
        w,
    )
}

/// SpatialEmbLoss_3d: `prediction` is (N, 3 + n_sigma + 1, D, H, W) — x, y
/// and z offsets, sigmas, seed — and `labels`, `centers` N·D·H·W ids.
/// `anisotropy`: z spacing over that of y and x.
pub fn embedseg_loss_graph_3d(
    prediction: &Tensor,
    labels: &[u32],
    centers: &[u32],
    n_sigma: usize,
    anisotropy: f64,
    w: &LossWeights,
) -> Result<LossTerms> {
    let (n, ch, d, h, wd) = prediction.dims5()?;
    let grid = xyzm(
        d,
        h,
        wd,
        anisotropy,
        prediction.dtype(),
        prediction.device(),
    )?;
    loss_over_grid(
        &prediction.reshape((n, ch, d * h * wd))?,
        &grid,
        labels,
        centers,
        n_sigma,
        w,
    )
}

/// The loss over flattened images: `prediction` (N, dims + n_sigma + 1, P)
/// and the grid (dims, P) its embeddings live in.
fn loss_over_grid(
    prediction: &Tensor,
    grid: &Tensor,
    labels: &[u32],
    centers: &[u32],
    n_sigma: usize,
    w: &LossWeights,
) -> Result<LossTerms> {
    let (n, ch, hw) = prediction.dims3()?;
    let dims = grid.dim(0)?;
    assert_eq!(
        ch,
        dims + n_sigma + 1,
        "prediction channels are {dims} offsets, n_sigma sigmas, 1 seed"
    );
    let dev = prediction.device();
    let grid_host: Vec<f64> = grid.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let mut total = Tensor::zeros((), prediction.dtype(), dev)?;
    let (mut sum_inst, mut sum_var, mut sum_seed) = (0.0, 0.0, 0.0);
    let mut ious = Vec::new();
    for b in 0..n {
        let pred = prediction.get(b)?;
        let emb = pred.narrow(0, 0, dims)?.tanh()?.add(grid)?;
        let sigma = pred.narrow(0, dims, n_sigma)?;
        let seed = candle_nn::ops::sigmoid(&pred.narrow(0, dims + n_sigma, 1)?.squeeze(0)?)?;
        let lab = &labels[b * hw..(b + 1) * hw];
        let ctr = &centers[b * hw..(b + 1) * hw];

        let bg: Vec<f64> = lab
            .iter()
            .map(|&v| if v == 0 { 1.0 } else { 0.0 })
            .collect();
        let bg = Tensor::from_vec(bg, hw, dev)?.to_dtype(prediction.dtype())?;
        let mut seed_loss = seed.sqr()?.mul(&bg)?.sum_all()?;
        let mut inst_loss = Tensor::zeros((), prediction.dtype(), dev)?;
        let mut var_loss = Tensor::zeros((), prediction.dtype(), dev)?;

        let mut instances: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (i, &v) in lab.iter().enumerate() {
            if v != 0 {
                instances.entry(v).or_default().push(i as u32);
            }
        }
        for pixels in instances.values() {
            let marked: Vec<u32> = pixels
                .iter()
                .copied()
                .filter(|&i| ctr[i as usize] != 0)
                .collect();
            let center: Vec<f64> = (0..dims)
                .map(|a| {
                    let axis = &grid_host[a * hw..(a + 1) * hw];
                    if marked.len() == 1 {
                        axis[marked[0] as usize]
                    } else {
                        let sum: f64 = pixels.iter().map(|&i| axis[i as usize]).sum();
                        sum / pixels.len() as f64
                    }
                })
                .collect();
            let center = Tensor::from_vec(center, (dims, 1), dev)?.to_dtype(prediction.dtype())?;
            let idx = Tensor::from_vec(pixels.clone(), pixels.len(), dev)?;
            let sigma_in = sigma.index_select(&idx, 1)?; // (n_sigma, k)
            let s = sigma_in.mean_keepdim(1)?; // (n_sigma, 1)
            var_loss = (var_loss + sigma_in.broadcast_sub(&s.detach())?.sqr()?.mean_all()?)?;
            let s = (s * 10.0)?.exp()?;
            let d2 = emb.broadcast_sub(&center)?.sqr()?; // (dims, P)
            let weighted = if n_sigma == 1 {
                d2.broadcast_mul(&s)?
            } else {
                d2.broadcast_mul(&s.narrow(0, 0, dims)?)?
            };
            let dist = weighted.sum(0)?.neg()?.exp()?; // (HW)
            let mut mask = vec![false; hw];
            for &i in pixels {
                mask[i as usize] = true;
            }
            inst_loss = (inst_loss + lovasz_hinge(&((&dist * 2.0)? - 1.0)?, &mask)?)?;
            let seed_in = seed.index_select(&idx, 0)?;
            let dist_in = dist.index_select(&idx, 0)?.detach();
            seed_loss =
                (seed_loss + (seed_in.sub(&dist_in)?.sqr()?.sum_all()? * w.foreground_weight)?)?;
            ious.push(iou(&dist, &mask)?);
        }
        let k = instances.len().max(1) as f64;
        let inst_loss = (inst_loss / k)?;
        let var_loss = (var_loss / k)?;
        let seed_loss = (seed_loss / hw as f64)?;
        sum_inst += scalar(&inst_loss)?;
        sum_var += scalar(&var_loss)?;
        sum_seed += scalar(&seed_loss)?;
        let image_loss =
            ((inst_loss * w.w_inst)? + (var_loss * w.w_var)? + (seed_loss * w.w_seed)?)?;
        total = (total + image_loss)?;
    }
    let total = (total / n as f64)?;
    let values = LossValues {
        value: scalar(&total)?,
        instance: sum_inst / n as f64,
        var: sum_var / n as f64,
        seed: sum_seed / n as f64,
    };
    Ok(LossTerms::on_host(total, values, ious))
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// IoU of φ > 0.5 with the instance mask (EmbedSeg's calculate_iou).
fn iou(dist: &Tensor, mask: &[bool]) -> Result<f64> {
    let d: Vec<f64> = dist.to_dtype(DType::F64)?.to_vec1()?;
    let (mut inter, mut union) = (0usize, 0usize);
    for (&p, &m) in d.iter().zip(mask) {
        let pred = p > 0.5;
        inter += usize::from(pred && m);
        union += usize::from(pred || m);
    }
    Ok(if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::check::{check_grads, rand_tensor};
    use candle_core::{Device, Var};

    /// Two 8×8 images, three instances, one with a marked centre.
    fn targets() -> (Vec<u32>, Vec<u32>) {
        let mut labels = vec![0u32; 2 * 64];
        let mut centers = vec![0u32; 2 * 64];
        for y in 1..5 {
            for x in 1..4 {
                labels[y * 8 + x] = 3;
            }
        }
        for y in 5..8 {
            for x in 2..7 {
                labels[y * 8 + x] = 7;
            }
        }
        centers[2 * 8 + 2] = 3;
        for y in 2..6 {
            for x in 3..6 {
                labels[64 + y * 8 + x] = 1;
            }
        }
        (labels, centers)
    }

    fn prediction(offsets: &Var, sigma: &Var, seed: &Var) -> Tensor {
        Tensor::cat(
            &[offsets.as_tensor(), sigma.as_tensor(), seed.as_tensor()],
            1,
        )
        .unwrap()
    }

    #[test]
    fn instance_and_variance_terms_match_finite_differences() {
        let (labels, centers) = targets();
        let offsets = Var::from_tensor(&(rand_tensor(&[2, 2, 8, 8], 1) * 0.01).unwrap()).unwrap();
        let sigma = Var::from_tensor(&(rand_tensor(&[2, 2, 8, 8], 2) * 0.3).unwrap()).unwrap();
        let seed = Var::from_tensor(&rand_tensor(&[2, 1, 8, 8], 3)).unwrap();
        let w = LossWeights {
            w_inst: 1.0,
            w_var: 10.0,
            w_seed: 0.0,
            foreground_weight: 10.0,
        };
        let f = || {
            embedseg_loss_graph(
                &prediction(&offsets, &sigma, &seed),
                &labels,
                &centers,
                2,
                &w,
            )
            .unwrap()
            .total
        };
        check_grads(&[offsets.clone(), sigma.clone()], f, 128, 1e-5);
    }

    #[test]
    fn seed_term_matches_finite_differences() {
        let (labels, centers) = targets();
        let offsets = Var::from_tensor(&(rand_tensor(&[2, 2, 8, 8], 4) * 0.01).unwrap()).unwrap();
        let sigma = Var::from_tensor(&(rand_tensor(&[2, 1, 8, 8], 5) * 0.3).unwrap()).unwrap();
        let seed = Var::from_tensor(&rand_tensor(&[2, 1, 8, 8], 6)).unwrap();
        let w = LossWeights {
            w_inst: 0.0,
            w_var: 0.0,
            w_seed: 1.0,
            foreground_weight: 10.0,
        };
        let f = || {
            embedseg_loss_graph(
                &prediction(&offsets, &sigma, &seed),
                &labels,
                &centers,
                1,
                &w,
            )
            .unwrap()
            .total
        };
        check_grads(std::slice::from_ref(&seed), f, 128, 1e-6);
    }

    #[test]
    fn a_perfect_prediction_scores_iou_one() {
        // Offsets that send every instance pixel to its centre (x in channel 0,
        // y in channel 1), a narrow bandwidth: a swap of axes would fail this.
        let (labels, centers) = targets();
        let w = 8;
        let mut pred = vec![0.0f64; 2 * 5 * 64];
        for b in 0..2 {
            let lab = &labels[b * 64..(b + 1) * 64];
            let ids: std::collections::BTreeSet<u32> =
                lab.iter().copied().filter(|&v| v > 0).collect();
            for id in ids {
                let px: Vec<usize> = (0..64).filter(|&i| lab[i] == id).collect();
                let cy = px.iter().map(|&i| (i / w) as f64).sum::<f64>() / px.len() as f64;
                let cx = px.iter().map(|&i| (i % w) as f64).sum::<f64>() / px.len() as f64;
                for &i in &px {
                    let (y, x) = ((i / w) as f64, (i % w) as f64);
                    pred[(b * 5) * 64 + i] = ((cx - x) * super::super::xym::PIXEL).atanh();
                    pred[(b * 5 + 1) * 64 + i] = ((cy - y) * super::super::xym::PIXEL).atanh();
                }
            }
            for i in 0..64 {
                // s = exp(15): φ > 0.5 within half a pixel of the centre.
                pred[(b * 5 + 2) * 64 + i] = 1.5;
                pred[(b * 5 + 3) * 64 + i] = 1.5;
            }
        }
        let p = Tensor::from_vec(pred, (2, 5, 8, 8), &Device::Cpu).unwrap();
        let w = LossWeights {
            w_inst: 1.0,
            w_var: 10.0,
            w_seed: 1.0,
            foreground_weight: 10.0,
        };
        // The offsets aim at the means, so no marked centres.
        let no_centres = vec![0u32; centers.len()];
        let terms = embedseg_loss_graph(&p, &labels, &no_centres, 2, &w).unwrap();
        assert!(terms.ious.iter().all(|&i| i > 0.999), "{:?}", terms.ious);
        assert!(terms.values().unwrap().var < 1e-12);
    }
}
