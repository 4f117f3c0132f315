//! Instance matching as StarDist's `matching` (which EmbedSeg reports as AP):
//! IoU between every true and predicted object; at each threshold an optimal
//! one-to-one assignment (Hungarian, SciPy's algorithm via `lsap`) maximising
//! first the number of pairs with IoU ≥ threshold, then their IoU;
//! AP = TP / (TP + FP + FN).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::data::Grid;

/// IoUs between the objects of two label images.
pub struct Overlap {
    pub n_true: usize,
    pub n_pred: usize,
    /// n_true × n_pred, row-major.
    pub iou: Vec<f64>,
    /// n_true × n_pred intersections (pixels).
    pub inter: Vec<u64>,
    pub true_sizes: Vec<u64>,
    pub pred_sizes: Vec<u64>,
}

/// Object ids in increasing order (0 is background) and each pixel's index.
fn relabel(g: &Grid<u32>) -> (Vec<usize>, usize) {
    let ids: std::collections::BTreeSet<u32> = g.data.iter().copied().filter(|&v| v != 0).collect();
    let map: HashMap<u32, usize> = ids.iter().enumerate().map(|(i, &v)| (v, i + 1)).collect();
    (
        g.data
            .iter()
            .map(|v| map.get(v).copied().unwrap_or(0))
            .collect(),
        ids.len(),
    )
}

pub fn overlap(truth: &Grid<u32>, pred: &Grid<u32>) -> Overlap {
    assert_eq!(
        (truth.width, truth.height),
        (pred.width, pred.height),
        "label images of one size"
    );
    let (t, n_true) = relabel(truth);
    let (p, n_pred) = relabel(pred);
    let mut inter = vec![0u64; n_true * n_pred];
    let mut true_sizes = vec![0u64; n_true];
    let mut pred_sizes = vec![0u64; n_pred];
    for (&a, &b) in t.iter().zip(&p) {
        if a > 0 {
            true_sizes[a - 1] += 1;
        }
        if b > 0 {
            pred_sizes[b - 1] += 1;
        }
        if a > 0 && b > 0 {
            inter[(a - 1) * n_pred + b - 1] += 1;
        }
    }
    let iou = (0..n_true * n_pred)
        .map(|k| {
            let (i, j) = (k / n_pred, k % n_pred);
            let union = true_sizes[i] + pred_sizes[j] - inter[k];
            if union == 0 {
                0.0
            } else {
                inter[k] as f64 / union as f64
            }
        })
        .collect();
    Overlap {
        n_true,
        n_pred,
        iou,
        inter,
        true_sizes,
        pred_sizes,
    }
}

/// StarDist's statistics at one threshold.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MatchStats {
    pub thresh: f64,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub n_true: usize,
    pub n_pred: usize,
    pub sum_matched_score: f64,
    /// TP / (TP + FP + FN): what EmbedSeg calls AP.
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub mean_matched_score: f64,
    pub mean_true_score: f64,
    pub panoptic_quality: f64,
}

fn divide(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

impl MatchStats {
    fn from_counts(
        thresh: f64,
        tp: usize,
        n_true: usize,
        n_pred: usize,
        sum_matched_score: f64,
    ) -> MatchStats {
        let (fp, fn_) = (n_pred - tp, n_true - tp);
        let (tpf, fpf, fnf) = (tp as f64, fp as f64, fn_ as f64);
        MatchStats {
            thresh,
            tp,
            fp,
            fn_,
            n_true,
            n_pred,
            sum_matched_score,
            accuracy: divide(tpf, tpf + fpf + fnf),
            precision: divide(tpf, tpf + fpf),
            recall: divide(tpf, tpf + fnf),
            f1: divide(tpf, tpf + (fpf + fnf) / 2.0),
            mean_matched_score: divide(sum_matched_score, tpf),
            mean_true_score: divide(sum_matched_score, n_true as f64),
            panoptic_quality: divide(sum_matched_score, tpf + (fpf + fnf) / 2.0),
        }
    }
}

/// The statistics at `thresh` (StarDist's `matching(..., thresh)`).
pub fn match_at(ov: &Overlap, thresh: f64) -> MatchStats {
    let (nt, np) = (ov.n_true, ov.n_pred);
    let n_matched = nt.min(np);
    let not_trivial = n_matched > 0 && ov.iou.iter().any(|&s| s >= thresh);
    if !not_trivial {
        return MatchStats::from_counts(thresh, 0, nt, np, 0.0);
    }
    // Costs as StarDist: −[score ≥ thr] − score / (2 n_matched), scores as tie-breaker.
    let costs: Vec<f64> = ov
        .iou
        .iter()
        .map(|&s| -(f64::from(u8::from(s >= thresh))) - s / (2.0 * n_matched as f64))
        .collect();
    let (rows, cols) =
        lsap::solve(nt, np, &costs, false).expect("a finite cost matrix has an assignment");
    let (mut tp, mut sum) = (0, 0.0);
    for (&i, &j) in rows.iter().zip(&cols) {
        let s = ov.iou[i * np + j];
        if s >= thresh {
            tp += 1;
            sum += s;
        }
    }
    MatchStats::from_counts(thresh, tp, nt, np, sum)
}

/// Dataset statistics from per-image ones (StarDist's `matching_dataset`,
/// by_image=False): counts and matched scores summed, ratios recomputed.
pub fn pool(stats: &[MatchStats]) -> MatchStats {
    let thresh = stats.first().map_or(0.0, |s| s.thresh);
    let sum = |f: fn(&MatchStats) -> usize| stats.iter().map(f).sum::<usize>();
    MatchStats::from_counts(
        thresh,
        sum(|s| s.tp),
        sum(|s| s.n_true),
        sum(|s| s.n_pred),
        stats.iter().map(|s| s.sum_matched_score).sum(),
    )
}

/// The thresholds EmbedSeg reports: 0.5, 0.55, …, 0.9.
pub fn ap_thresholds() -> Vec<f64> {
    (0..9).map(|i| (50 + 5 * i) as f64 / 100.0).collect()
}

/// Mean of a per-image statistic over images (EmbedSeg averages AP this way).
pub fn mean_over_images(per_image: &[MatchStats], f: fn(&MatchStats) -> f64) -> f64 {
    if per_image.is_empty() {
        return 0.0;
    }
    per_image.iter().map(f).sum::<f64>() / per_image.len() as f64
}

/// Per-threshold statistics, keyed by the threshold in hundredths.
pub fn match_all(ov: &Overlap, thresholds: &[f64]) -> BTreeMap<u32, MatchStats> {
    thresholds
        .iter()
        .map(|&t| ((t * 100.0).round() as u32, match_at(ov, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> Grid<u32> {
        let data = rows
            .iter()
            .flat_map(|r| {
                r.bytes()
                    .map(|b| if b == b'.' { 0 } else { (b - b'0') as u32 })
            })
            .collect();
        Grid::new(rows[0].len(), rows.len(), data)
    }

    #[test]
    fn a_hand_worked_case() {
        // Truth: 1 (4 px), 2 (4 px). Prediction: 5 = exactly 1; 7 covers 2 and one more pixel.
        let t = grid(&["11.22", "11.22"]);
        let p = grid(&["55.77", "55.77"]);
        let ov = overlap(&t, &p);
        assert_eq!((ov.n_true, ov.n_pred), (2, 2));
        let m = match_at(&ov, 0.5);
        assert_eq!((m.tp, m.fp, m.fn_), (2, 0, 0));
        let p = grid(&["55777", "55777"]);
        let ov = overlap(&t, &p);
        assert!((ov.iou[3] - 4.0 / 6.0).abs() < 1e-15);
        let m = match_at(&ov, 0.7);
        assert_eq!((m.tp, m.fp, m.fn_), (1, 1, 1));
        assert!((m.accuracy - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(m.mean_matched_score, 1.0);
    }

    #[test]
    fn empty_images_score_zero_without_dividing_by_zero() {
        let e = Grid::filled(3, 3, 0u32);
        let m = match_at(&overlap(&e, &e), 0.5);
        assert_eq!((m.tp, m.accuracy, m.mean_matched_score), (0, 0.0, 0.0));
    }
}
