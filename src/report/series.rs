//! Curves for drawing: exponential smoothing as TensorBoard and W&B do it, and
//! downsampling to what a chart can show without losing spikes.

/// One curve: (x, y) points in increasing x.
pub type Points = Vec<(f64, f64)>;

/// Exponential moving average with weight `alpha` on the past (0: none),
/// debiased so that the first points are not pulled towards zero
/// (TensorBoard's smoothing). Non-finite values are skipped.
pub fn ema(points: &[(f64, f64)], alpha: f64) -> Points {
    if alpha <= 0.0 {
        return points.iter().copied().filter(|p| p.1.is_finite()).collect();
    }
    let mut last = 0.0;
    let mut weight = 1.0;
    let mut out = Vec::with_capacity(points.len());
    for &(x, y) in points {
        if !y.is_finite() {
            continue;
        }
        last = last * alpha + (1.0 - alpha) * y;
        weight *= alpha;
        out.push((x, last / (1.0 - weight)));
    }
    out
}

/// At most two points per bucket of x: the lowest and the highest, in x
/// order. With one bucket per pixel column this draws the same envelope as
/// every point, so a single spike survives any amount of downsampling.
/// The first and last points are always kept.
pub fn min_max_buckets(points: &[(f64, f64)], buckets: usize) -> Points {
    if points.len() <= 2 * buckets.max(1) + 2 {
        return points.to_vec();
    }
    let (x0, x1) = (points[0].0, points[points.len() - 1].0);
    let span = (x1 - x0).max(f64::MIN_POSITIVE);
    let bucket_of = |x: f64| (((x - x0) / span * buckets as f64) as usize).min(buckets - 1);
    let mut out = Vec::with_capacity(2 * buckets + 2);
    out.push(points[0]);
    let mut i = 1;
    let end = points.len() - 1;
    while i < end {
        let b = bucket_of(points[i].0);
        let (mut lo, mut hi) = (i, i);
        let mut j = i + 1;
        while j < end && bucket_of(points[j].0) == b {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let (a, c) = (lo.min(hi), lo.max(hi));
        out.push(points[a]);
        if c != a {
            out.push(points[c]);
        }
        i = j;
    }
    out.push(points[end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_matches_a_hand_worked_case_and_is_debiased() {
        // alpha 0.5: s1 = 0.5·2/(1−0.5) = 2; s2 = (0.5·1 + 0.5·4)/(1−0.25) = 10/3.
        let s = ema(&[(1.0, 2.0), (2.0, 4.0)], 0.5);
        assert_eq!(s[0], (1.0, 2.0));
        assert!((s[1].1 - 10.0 / 3.0).abs() < 1e-12);
        // A constant stays constant from the first point on.
        let flat: Vec<_> = (0..50).map(|i| (i as f64, 7.0)).collect();
        assert!(ema(&flat, 0.99).iter().all(|p| (p.1 - 7.0).abs() < 1e-9));
        // NaN points are dropped, not propagated.
        let s = ema(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 1.0)], 0.6);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|p| p.1.is_finite()));
    }

    #[test]
    fn downsampling_keeps_spikes_ends_and_order() {
        let mut points: Vec<(f64, f64)> = (0..20_000).map(|i| (i as f64, (i % 7) as f64)).collect();
        points[12_345].1 = 1000.0;
        points[777].1 = -50.0;
        let d = min_max_buckets(&points, 300);
        assert!(d.len() <= 602, "{}", d.len());
        assert_eq!(d.first(), points.first());
        assert_eq!(d.last(), points.last());
        assert!(d.contains(&(12_345.0, 1000.0)));
        assert!(d.contains(&(777.0, -50.0)));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
        // Every bucket's envelope survives: the max over any bucket of the
        // original equals the max over the same range of the downsampled.
        for b in 0..300 {
            let lo = b as f64 * 19_999.0 / 300.0;
            let hi = (b + 1) as f64 * 19_999.0 / 300.0;
            let inside = |p: &&(f64, f64)| p.0 >= lo && p.0 < hi;
            let max_of = |v: &[(f64, f64)]| {
                v.iter()
                    .filter(inside)
                    .map(|p| p.1)
                    .fold(f64::MIN, f64::max)
            };
            assert_eq!(max_of(&points), max_of(&d), "bucket {b}");
        }
        // Short curves are left alone.
        assert_eq!(min_max_buckets(&points[..10], 300), points[..10].to_vec());
    }
}
