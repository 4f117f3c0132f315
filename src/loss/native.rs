//! EmbedSeg's loss from candle's ops, every instance of the batch at once:
//! the path a GPU runs, device-resident. The same definition as the fused
//! CPU op (fused.rs), and checked against it.
//!
//! The host reads only the labels it already has (which pixels form which
//! instance, each instance's centre); everything that depends on the
//! prediction stays on its device, as (K, P) tensors over the K instances
//! of the batch and the P pixels of an image: the membership mask, φ, the
//! errors, their sort and the Lovász weights (rows.rs: no shared-memory
//! sort limit, no dense cumulative-sum matrix). One small tensor comes back:
//! the total and the three terms (and, for validation, each instance's IoU).

use candle_core::{DType, Result, Tensor};

use super::embedseg::{LossTerms, LossWeights};
use super::permute::permute_rows;
use super::rows::{argsort_rows_desc, cumsum_rows};
use super::xym::{xym, PIXEL};
use crate::data::instances::InstanceTable;

/// `prediction` (N, 3 + n_sigma, H, W) on any device; `labels` and `centers`
/// N·H·W instance ids; `table` their instances where the caller has them
/// (the loader builds them beside the batch), else they are found here.
/// `ious`: also each instance's IoU of φ > 0.5. The values stay on the
/// device until read (`LossTerms::values`).
pub fn embedseg_loss_native(
    prediction: &Tensor,
    labels: &[u32],
    centers: &[u32],
    table: Option<&InstanceTable>,
    n_sigma: usize,
    w: &LossWeights,
    ious: bool,
) -> Result<LossTerms> {
    let (n, ch, h, wd) = prediction.dims4()?;
    assert_eq!(ch, 3 + n_sigma, "2 offsets, n_sigma sigmas, 1 seed");
    let p = h * wd;
    let (dev, dt) = (prediction.device(), prediction.dtype());
    let pred = prediction.reshape((n, ch, p))?;
    let seed = candle_nn::ops::sigmoid(&pred.narrow(1, 2 + n_sigma, 1)?.squeeze(1)?)?; // (N, P)
    let label_map = Tensor::from_slice(labels, (n, p), dev)?;
    let background = label_map.eq(0u32)?.to_dtype(dt)?;
    let bg_seed = seed.sqr()?.mul(&background)?.sum_all()?;

    let built;
    let table = match table {
        Some(t) => t,
        None => {
            built = InstanceTable::of(labels, centers, n, h, wd);
            &built
        }
    };
    let zero = Tensor::zeros((), dt, dev)?;
    let (instance, var, fg_seed, iou) = if table.is_empty() {
        (zero.clone(), zero.clone(), zero, None)
    } else {
        let terms = instance_terms(&pred, &seed, &label_map, table, n_sigma, (h, wd), ious)?;
        (terms.0, terms.1, (terms.2 * w.foreground_weight)?, terms.3)
    };
    let nb = n as f64;
    let instance = (instance / nb)?;
    let var = (var / nb)?;
    let seed_term = ((bg_seed + fg_seed)? / (p as f64 * nb))?;
    let total = ((&instance * w.w_inst)? + (&var * w.w_var)? + (&seed_term * w.w_seed)?)?;
    let stacked = Tensor::stack(&[&total, &instance, &var, &seed_term], 0)?.detach();
    let ious = match iou {
        Some(t) => t.to_dtype(DType::F64)?.to_vec1()?,
        None => Vec::new(),
    };
    Ok(LossTerms::on_device(total, stacked, ious))
}

/// Σ over instances of (Lovász hinge, sigma variance, foreground seed
/// error) / instances in their image — the last unweighted and summed
/// without the division — and the IoUs when asked for.
fn instance_terms(
    pred: &Tensor,
    seed: &Tensor,
    label_map: &Tensor,
    t: &InstanceTable,
    n_sigma: usize,
    (h, w): (usize, usize),
    want_ious: bool,
) -> Result<(Tensor, Tensor, Tensor, Option<Tensor>)> {
    debug_assert_eq!(pred.dim(1)?, 3 + n_sigma);
    let (dev, dt) = (pred.device(), pred.dtype());
    let k = t.len();
    let column = |v: &[f64]| -> Result<Tensor> { Tensor::from_slice(v, (k, 1), dev)?.to_dtype(dt) };
    let image = Tensor::from_slice(&t.image, k, dev)?;
    let ids = Tensor::from_slice(&t.id, (k, 1), dev)?;
    let pixels = column(&t.pixels)?;
    let per_image = column(&t.per_image)?.squeeze(1)?;
    // Pixels to grid units (xym's spacing), as the fused op scales them.
    let grid_centre: Vec<f64> = t.centre.iter().map(|c| c * PIXEL).collect();
    let centre = Tensor::from_vec(grid_centre, (k, 2, 1), dev)?.to_dtype(dt)?;

    let mask = label_map
        .index_select(&image, 0)?
        .broadcast_eq(&ids)?
        .to_dtype(dt)?; // (K, P)
    let of = |pred: &Tensor| -> Result<Field> {
        let dt = pred.dtype();
        Field::new(
            pred,
            &image,
            &mask.to_dtype(dt)?,
            &pixels.to_dtype(dt)?,
            &centre.to_dtype(dt)?,
            (h, w),
        )
    };
    let field = of(pred)?;
    let (mu, phi) = field.phi()?;
    let var = field
        .sigma
        .broadcast_sub(&mu.detach().unsqueeze(2)?)?
        .sqr()?
        .broadcast_mul(&mask.unsqueeze(1)?)?
        .sum(2)?
        .sum(1)?
        .broadcast_div(&(pixels.squeeze(1)? * n_sigma as f64)?)?; // (K)
    let errors = errors_of(&phi, &mask)?;
    // The sort order from f64 errors: in f32, pixels within ~1e-7 of a
    // neighbour's error would take ranks f32 rounding picks, not the
    // exact order the fused op (f64 inside) and PyTorch's f64 give.
    let keys = if dt == DType::F64 {
        errors.detach()
    } else {
        let exact = of(&pred.detach().to_dtype(DType::F64)?)?;
        errors_of(&exact.phi()?.1, &exact.mask)?
    };
    let lovasz = lovasz_rows(&errors, &keys, &mask, &pixels)?; // (K)
    let fg_seed = seed
        .index_select(&image, 0)?
        .sub(&phi.detach())?
        .sqr()?
        .mul(&mask)?
        .sum_all()?;
    let ious = if want_ious {
        let predicted = phi.gt(0.5)?.to_dtype(dt)?;
        let inter = predicted.mul(&mask)?.sum(1)?;
        let union = predicted.maximum(&mask)?.sum(1)?;
        // An empty union (no pixel at all) scores 0, as EmbedSeg's.
        Some(inter.div(&union.maximum(1.0)?)?)
    } else {
        None
    };
    Ok((
        lovasz.mul(&per_image)?.sum_all()?,
        var.mul(&per_image)?.sum_all()?,
        fg_seed,
        ious,
    ))
}

/// What φ of every instance is computed from: embeddings (K, 2, P) and
/// sigma (K, n_sigma, P) of each instance's image, its mask (K, P), pixel
/// count (K, 1) and centre (K, 2, 1).
struct Field {
    embeddings: Tensor,
    sigma: Tensor,
    mask: Tensor,
    pixels: Tensor,
    centre: Tensor,
}

impl Field {
    /// From the prediction (N, 3 + n_sigma, P): the embeddings
    /// tanh(offset) + xym and the sigma of each instance's `image`.
    fn new(
        pred: &Tensor,
        image: &Tensor,
        mask: &Tensor,
        pixels: &Tensor,
        centre: &Tensor,
        (h, w): (usize, usize),
    ) -> Result<Field> {
        let n_sigma = pred.dim(1)? - 3;
        let grid = xym(h, w, pred.dtype(), pred.device())?.unsqueeze(0)?;
        let embeddings = pred.narrow(1, 0, 2)?.tanh()?.broadcast_add(&grid)?; // (N, 2, P)
        let sigma = pred.narrow(1, 2, n_sigma)?.contiguous()?;
        Ok(Field {
            embeddings: embeddings.index_select(image, 0)?,
            sigma: sigma.index_select(image, 0)?,
            mask: mask.clone(),
            pixels: pixels.clone(),
            centre: centre.clone(),
        })
    }

    /// μ (K, n_sigma), each instance's mean sigma, and φ (K, P) =
    /// exp(−Σ_a s_a (e_a − c_a)²) with s = exp(10 μ) (one s for both axes
    /// when n_sigma = 1).
    fn phi(&self) -> Result<(Tensor, Tensor)> {
        let (k, n_sigma, _) = self.sigma.dims3()?;
        let mu = self
            .sigma
            .broadcast_mul(&self.mask.unsqueeze(1)?)?
            .sum(2)?
            .broadcast_div(&self.pixels)?;
        let s = (&mu * 10.0)?.exp()?;
        let s = if n_sigma == 1 {
            s.broadcast_as((k, 2))?
        } else {
            s
        };
        let d2 = self.embeddings.broadcast_sub(&self.centre)?.sqr()?; // (K, 2, P)
        let phi = d2.broadcast_mul(&s.unsqueeze(2)?)?.sum(1)?.neg()?.exp()?;
        Ok((mu, phi))
    }
}

/// The hinge errors: 2 − 2φ inside the instance, 2φ outside.
fn errors_of(phi: &Tensor, mask: &Tensor) -> Result<Tensor> {
    (phi * 2.0)? + mask.mul(&phi.affine(-4.0, 2.0)?)?
}

/// Each row's Lovász hinge: Σ_j relu(err_j)·w_j with w the Lovász gradient
/// of the labels sorted by decreasing `keys` (the errors, or the same in
/// f64). `fg` (K, P) 0/1, `gts` (K, 1) its row sums. The weights are
/// constants; the gradient flows through the sorted errors, as through
/// PyTorch's sort.
fn lovasz_rows(errors: &Tensor, keys: &Tensor, fg: &Tensor, gts: &Tensor) -> Result<Tensor> {
    let p = errors.dim(1)?;
    let order = argsort_rows_desc(keys)?;
    let sorted = permute_rows(errors, &order)?;
    let fg_sorted = permute_rows(fg, &order)?;
    let seen_fg = cumsum_rows(&fg_sorted)?;
    let rank = Tensor::arange(1u32, p as u32 + 1, errors.device())?
        .to_dtype(errors.dtype())?
        .unsqueeze(0)?;
    let seen_bg = rank.broadcast_sub(&seen_fg)?;
    // w_i = J_i − J_{i−1} with J_i = 1 − (gts − fg_i)/(gts + bg_i), written
    // without the difference (which loses ~1e-4 of w in f32): a foreground
    // pixel adds 1/(gts + bg_i), a background one
    // (gts − fg_i) / ((gts + bg_i − 1)(gts + bg_i)).
    let union = gts.broadcast_add(&seen_bg)?;
    let from_fg = fg_sorted.div(&union)?;
    let from_bg = (1.0 - &fg_sorted)?
        .mul(&gts.broadcast_sub(&seen_fg)?)?
        .div(&(&union - 1.0)?.mul(&union)?)?;
    let weights = (from_fg + from_bg)?.detach();
    sorted.relu()?.mul(&weights)?.sum(1)
}
