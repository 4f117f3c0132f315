//! The Lovász hinge (Berman et al. 2018) for one binary mask, as EmbedSeg's
//! `lovasz_hinge_flat`: errors 1 − logit·sign sorted descending, dotted with
//! the Lovász extension's gradient of the Jaccard loss at the sorted labels.
//!
//! Those weights depend only on the sorted labels, so they are computed here
//! in O(n) in plain Rust (candle's cumsum is a dense n×n matmul) and put back
//! in the pixels' own order: loss = Σ relu(errors) · weights. The gradient
//! then flows through `errors` alone, exactly as through PyTorch's sort.

use candle_core::{Result, Tensor};

/// The Lovász gradient of sorted labels (EmbedSeg's `lovasz_grad`).
pub fn lovasz_weights(gt_sorted: &[bool]) -> Vec<f64> {
    let gts = gt_sorted.iter().filter(|&&g| g).count() as f64;
    let mut out = Vec::with_capacity(gt_sorted.len());
    let (mut seen_fg, mut seen_bg) = (0.0, 0.0);
    let mut previous = 0.0;
    for (i, &g) in gt_sorted.iter().enumerate() {
        if g {
            seen_fg += 1.0;
        } else {
            seen_bg += 1.0;
        }
        let jaccard = 1.0 - (gts - seen_fg) / (gts + seen_bg);
        out.push(if i == 0 { jaccard } else { jaccard - previous });
        previous = jaccard;
    }
    out
}

/// The Lovász hinge of `logits` (a 1-D tensor) against the binary `labels`.
pub fn lovasz_hinge(logits: &Tensor, labels: &[bool]) -> Result<Tensor> {
    let n = labels.len();
    if n == 0 {
        return logits.sum_all()?.affine(0.0, 0.0);
    }
    let signs: Vec<f64> = labels.iter().map(|&l| if l { 1.0 } else { -1.0 }).collect();
    let signs = Tensor::from_vec(signs, n, logits.device())?.to_dtype(logits.dtype())?;
    let errors = (1.0 - logits.mul(&signs)?)?;
    let values: Vec<f64> = errors.to_dtype(candle_core::DType::F64)?.to_vec1()?;
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by(|&a, &b| values[b as usize].total_cmp(&values[a as usize]));
    let gt_sorted: Vec<bool> = order.iter().map(|&i| labels[i as usize]).collect();
    let sorted_weights = lovasz_weights(&gt_sorted);
    let mut weights = vec![0.0f64; n];
    for (rank, &i) in order.iter().enumerate() {
        weights[i as usize] = sorted_weights[rank];
    }
    let weights = Tensor::from_vec(weights, n, logits.device())?.to_dtype(logits.dtype())?;
    errors.relu()?.mul(&weights)?.sum_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::check::{check_grads, rand_tensor};
    use candle_core::{Device, Var};

    #[test]
    fn weights_match_a_hand_worked_case() {
        // gt sorted = [1, 0, 1]: gts = 2
        // i=0: inter 1, union 2 → J = 0.5;  i=1: inter 1, union 3 → J = 2/3;
        // i=2: inter 0, union 3 → J = 1.   grad = [0.5, 1/6, 1/3]
        let w = lovasz_weights(&[true, false, true]);
        let want = [0.5, 1.0 / 6.0, 1.0 / 3.0];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{w:?}");
        }
    }

    #[test]
    fn hinge_of_a_small_case_by_hand() {
        // logits [2, -1, 0.5], labels [1, 0, 0]: errors = [-1, 0, 1.5]
        // sorted desc: 1.5 (bg), 0 (bg), -1 (fg); gts = 1
        // J: i0 inter 1 union 2 → 0.5; i1: 1/3 → 2/3; i2: 0/3 → 1; grads [0.5, 1/6, 1/3]
        // loss = relu(1.5)·0.5 + relu(0)·1/6 + relu(-1)·1/3 = 0.75
        let logits = Tensor::new(&[2.0f64, -1.0, 0.5], &Device::Cpu).unwrap();
        let l = lovasz_hinge(&logits, &[true, false, false]).unwrap();
        assert!((l.to_scalar::<f64>().unwrap() - 0.75).abs() < 1e-15);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let logits = Var::from_tensor(&rand_tensor(&[200], 3)).unwrap();
        let labels: Vec<bool> = (0..200).map(|i| (i * 7) % 5 < 2).collect();
        check_grads(
            std::slice::from_ref(&logits),
            || lovasz_hinge(&logits, &labels).unwrap(),
            200,
            1e-6,
        );
    }
}
