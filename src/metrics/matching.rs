//! Instance matching as StarDist's `matching` (which EmbedSeg reports as AP):
//! IoU between every true and predicted object; at each threshold an optimal
//! one-to-one assignment (Hungarian, SciPy's algorithm via `lsap`) maximising
//! first the number of pairs with IoU ≥ threshold, then their IoU;
//! AP = TP / (TP + FP + FN).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::data::volume::Volume;
use crate::data::Grid;

/// The objects of two label images that overlap, and every object's size.
/// Only pairs that share a pixel are kept (the others have IoU 0): a frame of
/// 90,000 true and 1,409 predicted objects once took 4 GB as a dense matrix.
pub struct Overlap {
    pub n_true: usize,
    pub n_pred: usize,
    /// Pairs sharing pixels, by true index then predicted index.
    pub pairs: Vec<Pair>,
    pub true_sizes: Vec<u64>,
    pub pred_sizes: Vec<u64>,
}

/// True object `t` and predicted object `p` (indices from 0) overlap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    pub t: usize,
    pub p: usize,
    /// Shared pixels.
    pub inter: u64,
    pub iou: f64,
}

impl Overlap {
    /// The IoU of true object `t` and predicted object `p`.
    pub fn iou(&self, t: usize, p: usize) -> f64 {
        self.pairs
            .binary_search_by(|q| (q.t, q.p).cmp(&(t, p)))
            .map_or(0.0, |k| self.pairs[k].iou)
    }
}

/// Object ids in increasing order (0 is background) and each pixel's index.
fn relabel(labels: &[u32]) -> (Vec<usize>, usize) {
    let ids: std::collections::BTreeSet<u32> = labels.iter().copied().filter(|&v| v != 0).collect();
    let map: HashMap<u32, usize> = ids.iter().enumerate().map(|(i, &v)| (v, i + 1)).collect();
    (
        labels
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
    overlap_of_labels(&truth.data, &pred.data)
}

/// The same for volumes: objects are voxel sets, IoU counts voxels.
pub fn overlap_volumes(truth: &Volume<u32>, pred: &Volume<u32>) -> Overlap {
    assert_eq!(
        (truth.depth, truth.height, truth.width),
        (pred.depth, pred.height, pred.width),
        "label volumes of one size"
    );
    overlap_of_labels(&truth.data, &pred.data)
}

/// Two label arrays of the same pixels (or voxels), in the same order.
fn overlap_of_labels(truth: &[u32], pred: &[u32]) -> Overlap {
    let (t, n_true) = relabel(truth);
    let (p, n_pred) = relabel(pred);
    let mut true_sizes = vec![0u64; n_true];
    let mut pred_sizes = vec![0u64; n_pred];
    let mut shared: HashMap<(usize, usize), u64> = HashMap::new();
    for (&a, &b) in t.iter().zip(&p) {
        if a > 0 {
            true_sizes[a - 1] += 1;
        }
        if b > 0 {
            pred_sizes[b - 1] += 1;
        }
        if a > 0 && b > 0 {
            *shared.entry((a - 1, b - 1)).or_default() += 1;
        }
    }
    let mut pairs: Vec<Pair> = shared
        .into_iter()
        .map(|((t, p), inter)| {
            let union = true_sizes[t] + pred_sizes[p] - inter;
            Pair {
                t,
                p,
                inter,
                iou: inter as f64 / union as f64,
            }
        })
        .collect();
    pairs.sort_by_key(|q| (q.t, q.p));
    Overlap {
        n_true,
        n_pred,
        pairs,
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
///
/// StarDist assigns with the Hungarian algorithm on the costs −[IoU ≥ thr]
/// − IoU / (2·n_matched): as many pairs at or above the threshold as can be,
/// their IoUs as the tie-breaker. Where the pairs at or above the threshold
/// share no object (always for thresholds above 0.5, where an object can
/// have only one such partner) they are that assignment; otherwise the
/// assignment is solved among the objects they involve.
pub fn match_at(ov: &Overlap, thresh: f64) -> MatchStats {
    let (nt, np) = (ov.n_true, ov.n_pred);
    let n_matched = nt.min(np);
    let above: Vec<&Pair> = ov.pairs.iter().filter(|q| q.iou >= thresh).collect();
    if n_matched == 0 || above.is_empty() {
        return MatchStats::from_counts(thresh, 0, nt, np, 0.0);
    }
    let mut rows: Vec<usize> = above.iter().map(|q| q.t).collect();
    let mut cols: Vec<usize> = above.iter().map(|q| q.p).collect();
    rows.sort_unstable();
    rows.dedup();
    cols.sort_unstable();
    cols.dedup();
    if rows.len() == above.len() && cols.len() == above.len() {
        let sum = above.iter().map(|q| q.iou).sum();
        return MatchStats::from_counts(thresh, above.len(), nt, np, sum);
    }
    // Objects with more than one partner at the threshold: the Hungarian
    // algorithm among them.
    let (r, c) = (rows.len(), cols.len());
    let mut costs = vec![0.0; r * c];
    for (i, &t) in rows.iter().enumerate() {
        for (j, &p) in cols.iter().enumerate() {
            let s = ov.iou(t, p);
            costs[i * c + j] = -(f64::from(u8::from(s >= thresh))) - s / (2.0 * n_matched as f64);
        }
    }
    let (ri, ci) =
        lsap::solve(r, c, &costs, false).expect("a finite cost matrix has an assignment");
    let (mut tp, mut sum) = (0, 0.0);
    for (&i, &j) in ri.iter().zip(&ci) {
        let s = ov.iou(rows[i], cols[j]);
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
        assert!((ov.iou(1, 1) - 4.0 / 6.0).abs() < 1e-15);
        let m = match_at(&ov, 0.7);
        assert_eq!((m.tp, m.fp, m.fn_), (1, 1, 1));
        assert!((m.accuracy - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(m.mean_matched_score, 1.0);
    }

    /// StarDist's assignment as it was computed before pairs were sparse:
    /// the Hungarian algorithm on every true × predicted pair.
    fn dense(ov: &Overlap, thresh: f64) -> (usize, f64) {
        let (nt, np) = (ov.n_true, ov.n_pred);
        let n = nt.min(np);
        if n == 0 {
            return (0, 0.0);
        }
        let mut costs = vec![0.0; nt * np];
        for i in 0..nt {
            for j in 0..np {
                let s = ov.iou(i, j);
                costs[i * np + j] = -(f64::from(u8::from(s >= thresh))) - s / (2.0 * n as f64);
            }
        }
        let (r, c) = lsap::solve(nt, np, &costs, false).unwrap();
        r.iter().zip(&c).fold((0, 0.0), |(tp, sum), (&i, &j)| {
            let s = ov.iou(i, j);
            if s >= thresh {
                (tp + 1, sum + s)
            } else {
                (tp, sum)
            }
        })
    }

    #[test]
    fn ties_at_the_threshold_take_one_partner() {
        // Truth 1 has two pixels; predictions 5 and 7 cover one each: IoU
        // 0.5 both, and only one of them can be its match.
        let t = grid(&["11", ".."]);
        let p = grid(&["57", ".."]);
        let ov = overlap(&t, &p);
        let m = match_at(&ov, 0.5);
        assert_eq!((m.tp, m.fp, m.fn_), (1, 1, 0));
        assert_eq!(m.sum_matched_score, 0.5);
    }

    /// Random frames of small objects (ties at 0.5 included): the sparse
    /// assignment equals the dense one at every threshold.
    #[test]
    fn sparse_matching_equals_the_dense_assignment() {
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for _ in 0..200 {
            let (w, h) = (8, 6);
            let frame = |objects: u64, next: &mut dyn FnMut(u64) -> u64| {
                let mut g = Grid::filled(w, h, 0u32);
                for id in 1..=objects as u32 {
                    let (x, y) = (next(w as u64) as usize, next(h as u64) as usize);
                    let (bw, bh) = (1 + next(3) as usize, 1 + next(2) as usize);
                    for yy in y..(y + bh).min(h) {
                        for xx in x..(x + bw).min(w) {
                            g.data[yy * w + xx] = id;
                        }
                    }
                }
                g
            };
            let (nt, np) = (1 + next(6), 1 + next(6));
            let (t, p) = (frame(nt, &mut next), frame(np, &mut next));
            let ov = overlap(&t, &p);
            for thresh in [0.1, 0.3, 0.5, 0.55, 0.7, 0.9] {
                let m = match_at(&ov, thresh);
                let (tp, sum) = dense(&ov, thresh);
                assert_eq!(m.tp, tp, "threshold {thresh}");
                assert!(
                    (m.sum_matched_score - sum).abs() < 1e-12,
                    "threshold {thresh}"
                );
            }
        }
    }

    #[test]
    fn empty_images_score_zero_without_dividing_by_zero() {
        let e = Grid::filled(3, 3, 0u32);
        let m = match_at(&overlap(&e, &e), 0.5);
        assert_eq!((m.tp, m.accuracy, m.mean_matched_score), (0, 0.0, 0.0));
    }
}
