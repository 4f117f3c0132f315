//! The Cell Tracking Challenge SEG measure: a reference object is matched to
//! the result object that covers more than half of its pixels; its score is
//! their Jaccard index (0 when unmatched); SEG is the mean over all
//! reference objects of all annotated frames.

use super::matching::Overlap;

/// (Σ Jaccard of matched reference objects, number of reference objects) of
/// one frame; SEG over frames is Σ of the first / Σ of the second.
pub fn seg_parts(ov: &Overlap) -> (f64, usize) {
    let sum = ov
        .pairs
        .iter()
        .filter(|q| 2 * q.inter > ov.true_sizes[q.t])
        .map(|q| q.iou)
        .sum();
    (sum, ov.n_true)
}

/// SEG over frames from their parts.
pub fn seg(parts: &[(f64, usize)]) -> f64 {
    let n: usize = parts.iter().map(|p| p.1).sum();
    // + 0.0: a float sum of nothing is −0.0, which would print "-0.0000".
    parts.iter().map(|p| p.0).sum::<f64>() / n.max(1) as f64 + 0.0
}

#[cfg(test)]
mod tests {
    use super::super::matching::overlap;
    use super::*;
    use crate::data::Grid;

    #[test]
    fn nothing_matched_is_zero_not_negative_zero() {
        let t = Grid::new(4, 1, vec![1, 1, 0, 0]);
        let none = Grid::new(4, 1, vec![0, 0, 0, 0]);
        let s = seg(&[seg_parts(&overlap(&t, &none))]);
        assert_eq!(format!("{s:.4}"), "0.0000");
        assert_eq!(format!("{:.4}", seg(&[])), "0.0000");
    }

    #[test]
    fn more_than_half_of_the_reference_must_be_covered() {
        // Reference object 1 has 4 pixels: a result covering exactly 2 is no match.
        let t = Grid::new(4, 1, vec![1, 1, 1, 1]);
        let half = Grid::new(4, 1, vec![3, 3, 0, 0]);
        assert_eq!(seg_parts(&overlap(&t, &half)), (0.0, 1));
        let three = Grid::new(4, 1, vec![3, 3, 3, 0]);
        assert_eq!(seg_parts(&overlap(&t, &three)), (0.75, 1));
        assert_eq!(seg(&[(0.75, 1), (0.0, 1)]), 0.375);
    }
}
