//! The figures `esx eval` reports for a set of frames: AP at IoU 0.5…0.9 per
//! frame, their mean over frames (as EmbedSeg reports) and pooled over all
//! objects (StarDist's `matching_dataset`), the mean IoU of pairs matched at
//! 0.5, and the CTC SEG.

use serde::Serialize;

use super::matching::{
    ap_thresholds, match_at, overlap, overlap_volumes, pool, MatchStats, Overlap,
};
use super::seg::{seg, seg_parts};
use crate::data::volume::Volume;
use crate::data::Grid;

/// One frame's scores.
#[derive(Clone, Debug, Serialize)]
pub struct FrameScores {
    pub frame: String,
    pub n_true: usize,
    pub n_pred: usize,
    /// TP / (TP + FP + FN) at each of `ap_thresholds()`.
    pub ap: Vec<f64>,
    pub seg: f64,
    #[serde(skip)]
    stats: Vec<MatchStats>,
    #[serde(skip)]
    seg_parts: (f64, usize),
}

impl FrameScores {
    pub fn new(frame: &str, truth: &Grid<u32>, pred: &Grid<u32>) -> FrameScores {
        FrameScores::of_overlap(frame, &overlap(truth, pred))
    }

    /// A volume's scores: AP and SEG over its objects' voxels.
    pub fn of_volumes(frame: &str, truth: &Volume<u32>, pred: &Volume<u32>) -> FrameScores {
        FrameScores::of_overlap(frame, &overlap_volumes(truth, pred))
    }

    fn of_overlap(frame: &str, ov: &Overlap) -> FrameScores {
        let stats: Vec<MatchStats> = ap_thresholds().iter().map(|&t| match_at(ov, t)).collect();
        let parts = seg_parts(ov);
        FrameScores {
            frame: frame.to_string(),
            n_true: ov.n_true,
            n_pred: ov.n_pred,
            ap: stats.iter().map(|s| s.accuracy).collect(),
            seg: seg(&[parts]),
            stats,
            seg_parts: parts,
        }
    }
}

/// Scores over frames.
#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    pub thresholds: Vec<f64>,
    /// Per threshold: the mean over frames of each frame's AP.
    pub ap_mean: Vec<f64>,
    /// Per threshold: AP of all frames' objects pooled.
    pub ap_pooled: Vec<f64>,
    /// Mean IoU of the pairs matched at IoU ≥ 0.5, pooled over frames.
    pub mean_matched_iou: f64,
    /// CTC SEG over every reference object of every frame.
    pub seg: f64,
    pub n_true: usize,
    pub n_pred: usize,
    pub frames: Vec<FrameScores>,
}

impl Scores {
    pub fn of(frames: Vec<FrameScores>) -> Scores {
        let thresholds = ap_thresholds();
        let n = frames.len().max(1) as f64;
        let ap_mean = (0..thresholds.len())
            .map(|t| frames.iter().map(|f| f.ap[t]).sum::<f64>() / n)
            .collect();
        let pooled: Vec<MatchStats> = (0..thresholds.len())
            .map(|t| {
                pool(
                    &frames
                        .iter()
                        .map(|f| f.stats[t].clone())
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let parts: Vec<(f64, usize)> = frames.iter().map(|f| f.seg_parts).collect();
        Scores {
            ap_mean,
            ap_pooled: pooled.iter().map(|s| s.accuracy).collect(),
            mean_matched_iou: pooled[0].mean_matched_score,
            seg: seg(&parts),
            n_true: frames.iter().map(|f| f.n_true).sum(),
            n_pred: frames.iter().map(|f| f.n_pred).sum(),
            thresholds,
            frames,
        }
    }

    /// AP at IoU 0.5, averaged over frames.
    pub fn ap50(&self) -> f64 {
        self.ap_mean[0]
    }

    /// AP averaged over the IoU thresholds 0.5:0.95 (and over frames).
    pub fn ap(&self) -> f64 {
        self.ap_mean.iter().sum::<f64>() / self.ap_mean.len() as f64
    }

    /// The scalars a run records: ap50, ap75, ap (mean over thresholds),
    /// ap50_pooled, matched_iou, seg.
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        let mean = self.ap();
        vec![
            ("ap50", self.ap_mean[0]),
            ("ap75", self.ap_mean[5]),
            ("ap", mean),
            ("ap50_pooled", self.ap_pooled[0]),
            ("matched_iou", self.mean_matched_iou),
            ("seg", self.seg),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-worked in 3D: two 2×2×2 cubes; one predicted exactly, the other
    /// one plane too deep (4 of its 8 voxels shared, IoU 4/12). AP50: 1 TP,
    /// 1 FP, 1 FN = 1/3. SEG: the shifted one covers exactly half of its
    /// reference, not more, so (1 + 0) / 2. The same cubes flattened into
    /// one plane would overlap fully: the z axis counts.
    #[test]
    fn hand_worked_volume() {
        let mut truth = Volume::filled(4, 2, 5, 0u32);
        let mut pred = Volume::filled(4, 2, 5, 0u32);
        for z in 0..2 {
            for y in 0..2 {
                for x in 0..2 {
                    truth.set(z, y, x, 1);
                    pred.set(z, y, x, 7);
                    truth.set(z, y, x + 3, 2);
                    pred.set(z + 1, y, x + 3, 9);
                }
            }
        }
        let f = FrameScores::of_volumes("v", &truth, &pred);
        assert_eq!((f.n_true, f.n_pred), (2, 2));
        assert!((f.ap[0] - 1.0 / 3.0).abs() < 1e-12, "{:?}", f.ap);
        assert!((f.seg - 0.5).abs() < 1e-12, "{}", f.seg);
    }

    #[test]
    fn hand_worked_two_frames() {
        // Frame a: one object, predicted exactly. Frame b: two objects, one
        // predicted with IoU 2/4 (matched at 0.5 only), the other missed.
        let a = Grid::new(4, 1, vec![1, 1, 0, 0]);
        let tb = Grid::new(6, 1, vec![1, 1, 1, 0, 2, 2]);
        let pb = Grid::new(6, 1, vec![0, 5, 5, 5, 0, 0]);
        let s = Scores::of(vec![
            FrameScores::new("a", &a, &a),
            FrameScores::new("b", &tb, &pb),
        ]);
        // b: object 1 (3 px) vs prediction 5 (3 px), intersection 2, IoU 2/4.
        assert_eq!(s.frames[1].ap[0], 1.0 / 2.0); // TP 1, FP 0, FN 1
        assert_eq!(s.frames[1].ap[1], 0.0); // 0.55: no match, FP 1 FN 2
        assert_eq!(s.ap_mean[0], (1.0 + 0.5) / 2.0);
        assert_eq!(s.ap_pooled[0], 2.0 / 3.0); // TP 2, FP 0, FN 1
        assert_eq!(s.mean_matched_iou, (1.0 + 0.5) / 2.0);
        // SEG: a's object 1.0; b's object 1 is covered 2/3 > 1/2 → 0.5; object 2 → 0.
        assert_eq!(s.seg, (1.0 + 0.5 + 0.0) / 3.0);
        assert_eq!((s.n_true, s.n_pred), (3, 2));
    }
}
