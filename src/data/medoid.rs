//! The exact medoid of a pixel set: the pixel j minimising
//! E(j) = Σ_k |q_k − q_j| (Euclidean), ties to the first pixel in row-major order.
//!
//! Brute force is O(N²). We prune with a proven lower bound instead. For K
//! unit vectors u_i at angles iπ/K and any vector v,
//!     Σ_i |u_i · v| ≤ |v| / sin(π/2K)
//! (the sum of |cos| over K evenly spaced angles peaks at 1/sin(π/2K)), so
//!     E(j) ≥ sin(π/2K) · Σ_i B_i(j),   B_i(j) = Σ_k |u_i · (q_k − q_j)|.
//! Each B_i is a 1-D problem: sort the projections once, and prefix sums give
//! B_i(j) for every j in O(N). With K = 32 the bound is within 0.12 % of E, so
//! only the few pixels whose bound is below the best exact E found so far
//! (visited in increasing bound order) need an exact O(N) evaluation.
//! The exact evaluation is the same function brute force uses, so the two
//! agree bit for bit, ties included.

const DIRECTIONS: usize = 32;
/// Below this size brute force is as fast.
const BRUTE_FORCE_BELOW: usize = 48;

/// Σ_k |q_k − q_j| in a fixed summation order (4 lanes, then combined).
pub fn summed_distance(ys: &[f64], xs: &[f64], j: usize) -> f64 {
    let (yj, xj) = (ys[j], xs[j]);
    let mut acc = [0.0f64; 4];
    let chunks = ys.len() / 4;
    for c in 0..chunks {
        for (lane, a) in acc.iter_mut().enumerate() {
            let k = c * 4 + lane;
            let (dy, dx) = (ys[k] - yj, xs[k] - xj);
            *a += (dy * dy + dx * dx).sqrt();
        }
    }
    for k in chunks * 4..ys.len() {
        let (dy, dx) = (ys[k] - yj, xs[k] - xj);
        acc[0] += (dy * dy + dx * dx).sqrt();
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// The medoid by brute force (for tests and tiny sets).
pub fn medoid_brute_force(ys: &[f64], xs: &[f64]) -> usize {
    assert!(!ys.is_empty(), "medoid of no pixels");
    let mut best = (f64::INFINITY, 0);
    for j in 0..ys.len() {
        let e = summed_distance(ys, xs, j);
        if e < best.0 {
            best = (e, j);
        }
    }
    best.1
}

/// The exact medoid (same answer as brute force), fast on large sets.
pub fn medoid(ys: &[f64], xs: &[f64]) -> usize {
    let n = ys.len();
    assert!(n > 0 && xs.len() == n, "medoid of no pixels");
    if n < BRUTE_FORCE_BELOW {
        return medoid_brute_force(ys, xs);
    }
    least_by_bound(&lower_bounds(ys, xs), |j| summed_distance(ys, xs, j))
}

/// The index minimising `exact` (ties to the lowest index), given a lower
/// bound of it for every index: indices are evaluated in increasing bound
/// order until the bound passes the best exact value found.
pub(crate) fn least_by_bound(bound: &[f64], exact: impl Fn(usize) -> f64) -> usize {
    let mut order: Vec<u32> = (0..bound.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        bound[a as usize]
            .total_cmp(&bound[b as usize])
            .then(a.cmp(&b))
    });
    let mut best = (f64::INFINITY, usize::MAX);
    for &j in &order {
        let j = j as usize;
        if bound[j] > best.0 {
            break;
        }
        let e = exact(j);
        if e < best.0 || (e == best.0 && j < best.1) {
            best = (e, j);
        }
    }
    best.1
}

/// sin(π/2K) · Σ_i B_i(j) for every j, shaved by 1e-9 relative for rounding.
fn lower_bounds(ys: &[f64], xs: &[f64]) -> Vec<f64> {
    let n = ys.len();
    let mut total = vec![0.0f64; n];
    let mut keyed: Vec<(f64, u32)> = Vec::with_capacity(n);
    for i in 0..DIRECTIONS {
        let theta = std::f64::consts::PI * i as f64 / DIRECTIONS as f64;
        let (s, c) = theta.sin_cos();
        keyed.clear();
        keyed.extend((0..n).map(|k| (xs[k] * c + ys[k] * s, k as u32)));
        keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let sum_all: f64 = keyed.iter().map(|p| p.0).sum();
        let mut below = 0.0; // sum of projections ranked before r
        for (r, &(p, k)) in keyed.iter().enumerate() {
            let above = sum_all - below - p;
            let b = (p * r as f64 - below) + (above - p * (n - r - 1) as f64);
            total[k as usize] += b.max(0.0);
            below += p;
        }
    }
    let scale = (std::f64::consts::PI / (2.0 * DIRECTIONS as f64)).sin() * (1.0 - 1e-9);
    total.iter_mut().for_each(|t| *t *= scale);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn coords(points: &[(i32, i32)]) -> (Vec<f64>, Vec<f64>) {
        points.iter().map(|&(y, x)| (y as f64, x as f64)).unzip()
    }

    #[test]
    fn the_bound_holds_and_is_tight() {
        let pts: Vec<(i32, i32)> = (0..30)
            .flat_map(|y| (0..40).map(move |x| (y, x * (y % 3 + 1))))
            .collect();
        let (ys, xs) = coords(&pts);
        let lb = lower_bounds(&ys, &xs);
        for j in (0..pts.len()).step_by(37) {
            let e = summed_distance(&ys, &xs, j);
            assert!(lb[j] <= e, "bound {} above E {}", lb[j], e);
            assert!(lb[j] >= e * 0.998, "bound {} not tight for E {}", lb[j], e);
        }
    }

    #[test]
    fn symmetric_shapes_break_ties_like_brute_force() {
        // A ring and a square have many tied optima.
        let square: Vec<(i32, i32)> = (0..10).flat_map(|y| (0..10).map(move |x| (y, x))).collect();
        let ring: Vec<(i32, i32)> = (-20..=20)
            .flat_map(|y| (-20..=20).map(move |x| (y, x)))
            .filter(|&(y, x)| (100..=400).contains(&(y * y + x * x)))
            .collect();
        for pts in [square, ring] {
            let (ys, xs) = coords(&pts);
            assert_eq!(medoid(&ys, &xs), medoid_brute_force(&ys, &xs));
        }
    }

    fn shape() -> impl Strategy<Value = Vec<(i32, i32)>> {
        // Unions of random ellipses and segments: convex, concave, split.
        let blob = (0i32..60, 0i32..60, 1i32..15, 1i32..15, 0.0f64..3.2);
        prop::collection::vec(blob, 1..4).prop_map(|blobs| {
            let mut set = std::collections::BTreeSet::new();
            for (cy, cx, ry, rx, th) in blobs {
                let (s, c) = th.sin_cos();
                for y in cy - 16..=cy + 16 {
                    for x in cx - 16..=cx + 16 {
                        let (dy, dx) = ((y - cy) as f64, (x - cx) as f64);
                        let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
                        if (u / rx as f64).powi(2) + (v / ry as f64).powi(2) <= 1.0 {
                            set.insert((y, x));
                        }
                    }
                }
            }
            set.into_iter().collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn equals_brute_force_on_random_shapes(pts in shape()) {
            let (ys, xs) = coords(&pts);
            prop_assert_eq!(medoid(&ys, &xs), medoid_brute_force(&ys, &xs));
        }
    }
}
