//! Per-image intensity normalisation, as EmbedSeg's
//! `normalize_min_max_percentile`: (x − p_lo) / (p_hi − p_lo + 1e-20), not
//! clipped, percentiles interpolated linearly like numpy's.

use super::Grid;
use crate::config::Normalization;

const EPS: f32 = 1e-20;

/// The `p`-th percentile (0–100) of `values`, numpy's linear interpolation.
pub fn percentile(values: &[f32], p: f64) -> f32 {
    assert!(!values.is_empty(), "percentile of nothing");
    let mut v = values.to_vec();
    let rank = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let frac = (rank - lo as f64) as f32;
    let (_, &mut a, rest) = v.select_nth_unstable_by(lo, f32::total_cmp);
    if frac == 0.0 || rest.is_empty() {
        return a;
    }
    let b = rest.iter().copied().fold(f32::INFINITY, f32::min);
    a + (b - a) * frac
}

/// Normalises in place with the configured method.
pub fn normalize(image: &mut Grid<f32>, method: Normalization, pmin: f64, pmax: f64) {
    let (lo, hi) = match method {
        Normalization::Percentile => (percentile(&image.data, pmin), percentile(&image.data, pmax)),
        Normalization::Minmax => image
            .data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            }),
    };
    let scale = 1.0 / (hi - lo + EPS);
    for x in &mut image.data {
        *x = (*x - lo) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy() {
        // np.percentile(np.arange(10), [0, 1, 50, 99.8, 100]) = 0, 0.09, 4.5, 8.982, 9
        let v: Vec<f32> = (0..10).rev().map(|x| x as f32).collect();
        for (p, want) in [
            (0.0, 0.0),
            (1.0, 0.09),
            (50.0, 4.5),
            (99.8, 8.982),
            (100.0, 9.0),
        ] {
            assert!(
                (percentile(&v, p) - want).abs() < 1e-5,
                "p{p}: {}",
                percentile(&v, p)
            );
        }
    }

    #[test]
    fn percentile_normalisation_maps_percentiles_to_0_and_1() {
        let mut g = Grid::new(101, 1, (0..=100).map(|x| x as f32 * 2.0).collect());
        normalize(&mut g, Normalization::Percentile, 1.0, 99.0);
        assert!((g.data[1] - 0.0).abs() < 1e-6 && (g.data[99] - 1.0).abs() < 1e-6);
        assert!(g.data[0] < 0.0 && g.data[100] > 1.0, "not clipped");
        let mut g = Grid::new(3, 1, vec![5.0, 7.0, 9.0]);
        normalize(&mut g, Normalization::Minmax, 1.0, 99.8);
        assert_eq!(g.data, vec![0.0, 0.5, 1.0]);
    }
}
