//! The exact medoid of a voxel set in 3D: the voxel j minimising
//! E(j) = Σ_k |q_k − q_j| (Euclidean, in the coordinates given: z already
//! scaled by the anisotropy), ties to the first voxel in the order given.
//!
//! The 2D medoid's pruning (medoid.rs) carried to the sphere. For unit
//! vectors u_1…u_M and any vector v, Σ_i |u_i · v| ≤ C·|v| where
//! C = max over unit v of f(v) = Σ_i |u_i · v|, so
//!     E(j) ≥ Σ_i B_i(j) / C,   B_i(j) = Σ_k |u_i · (q_k − q_j)|,
//! and each B_i is a sorted 1-D problem. In 2D C has a closed form; here it
//! is computed once for the fixed directions. f is linear on each cell of
//! the sphere cut by the great circles u_i · v = 0 (f = v · w_s, w_s the
//! signed sum of the u_i of the cell's sign pattern s), so C ≤ max_s |w_s|
//! over the cells. Every cell is a spherical polygon, whose angles sum to
//! more than π, so it has a corner of at least 60°; probing around every
//! crossing of two circles at 16 angles (22.5° apart) therefore finds every
//! cell's sign pattern. With 48 directions the bound is within 4 % of E, so
//! only voxels whose E is within 4 % of the best need an exact O(N)
//! evaluation.

use std::sync::OnceLock;

use super::medoid::least_by_bound;

/// Directions on the half sphere (u and −u give the same |u · v|).
const DIRECTIONS: usize = 48;
/// Below this size brute force is as fast.
const BRUTE_FORCE_BELOW: usize = 64;
/// Headroom on C for cells too thin for the probes to resolve in floating
/// point (a missed cell of width δ can exceed a probed one by at most M·δ).
const C_HEADROOM: f64 = 1.0 + 1e-3;

/// A point in 3D: (z, y, x).
pub type Point = [f64; 3];

/// Σ_k |q_k − q_j| in a fixed summation order (4 lanes, then combined).
pub fn summed_distance(points: &[Point], j: usize) -> f64 {
    let q = points[j];
    let d = |p: &Point| {
        let (a, b, c) = (p[0] - q[0], p[1] - q[1], p[2] - q[2]);
        (a * a + b * b + c * c).sqrt()
    };
    let mut acc = [0.0f64; 4];
    let chunks = points.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, p) in acc.iter_mut().zip(c) {
            *a += d(p);
        }
    }
    for p in rest {
        acc[0] += d(p);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// The medoid by brute force (for tests and tiny sets).
pub fn medoid_3d_brute_force(points: &[Point]) -> usize {
    assert!(!points.is_empty(), "medoid of no voxels");
    let mut best = (f64::INFINITY, 0);
    for j in 0..points.len() {
        let e = summed_distance(points, j);
        if e < best.0 {
            best = (e, j);
        }
    }
    best.1
}

/// The exact medoid (the same answer as brute force), fast on large sets.
pub fn medoid_3d(points: &[Point]) -> usize {
    let n = points.len();
    assert!(n > 0, "medoid of no voxels");
    if n < BRUTE_FORCE_BELOW {
        return medoid_3d_brute_force(points);
    }
    least_by_bound(&lower_bounds(points), |j| summed_distance(points, j))
}

/// Σ_i B_i(j) / C for every j, shaved by 1e-9 relative for rounding.
fn lower_bounds(points: &[Point]) -> Vec<f64> {
    let n = points.len();
    let mut total = vec![0.0f64; n];
    let mut keyed: Vec<(f64, u32)> = Vec::with_capacity(n);
    for u in directions() {
        keyed.clear();
        keyed.extend(
            points
                .iter()
                .enumerate()
                .map(|(k, p)| (dot(u, p), k as u32)),
        );
        keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let sum_all: f64 = keyed.iter().map(|p| p.0).sum();
        let mut below = 0.0; // the sum of the projections ranked before r
        for (r, &(p, k)) in keyed.iter().enumerate() {
            let above = sum_all - below - p;
            let b = (p * r as f64 - below) + (above - p * (n - r - 1) as f64);
            total[k as usize] += b.max(0.0);
            below += p;
        }
    }
    let scale = (1.0 - 1e-9) / bound_constant();
    total.iter_mut().for_each(|t| *t *= scale);
    total
}

fn dot(a: &Point, b: &Point) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: &Point, b: &Point) -> Point {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalised(v: Point) -> Point {
    let l = dot(&v, &v).sqrt();
    [v[0] / l, v[1] / l, v[2] / l]
}

/// Fibonacci points on the upper half sphere: nearly even, and in general
/// position (no three great circles through one point).
fn directions() -> &'static [Point] {
    static DIRS: OnceLock<Vec<Point>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
        (0..DIRECTIONS)
            .map(|i| {
                let z = 1.0 - (i as f64 + 0.5) / DIRECTIONS as f64;
                let r = (1.0 - z * z).sqrt();
                let phi = golden * i as f64;
                [z, r * phi.sin(), r * phi.cos()]
            })
            .collect()
    })
}

/// max_s |w_s| over the cells (see the module doc), with headroom.
fn bound_constant() -> f64 {
    static C: OnceLock<f64> = OnceLock::new();
    *C.get_or_init(|| {
        let dirs = directions();
        let mut best = 0f64;
        for (i, a) in dirs.iter().enumerate() {
            for b in &dirs[i + 1..] {
                let vertex = normalised(cross(a, b));
                // Two tangent directions at the vertex.
                let t1 = normalised(cross(&vertex, a));
                let t2 = cross(&vertex, &t1);
                for side in [1.0, -1.0] {
                    for k in 0..16 {
                        let angle = std::f64::consts::PI * k as f64 / 8.0;
                        let (s, c) = angle.sin_cos();
                        let eps = 1e-6;
                        let v: Point = std::array::from_fn(|d| {
                            side * vertex[d] + eps * (c * t1[d] + s * t2[d])
                        });
                        let mut w = [0.0; 3];
                        for u in dirs {
                            let sign = dot(u, &v).signum();
                            for d in 0..3 {
                                w[d] += sign * u[d];
                            }
                        }
                        best = best.max(dot(&w, &w).sqrt());
                    }
                }
            }
        }
        best * C_HEADROOM
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// f(v) = Σ_i |u_i · v|.
    fn spread(v: &Point) -> f64 {
        directions().iter().map(|u| dot(u, v).abs()).sum()
    }

    /// C bounds f everywhere and is tight: random directions never exceed
    /// it and come within 0.3 % of it; the ratio min f / C (how tight the
    /// bound on E can be) is about 0.96 with 48 directions (0.98 with 96).
    #[test]
    fn the_constant_bounds_the_spread_and_is_tight() {
        let c = bound_constant();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (mut lo, mut hi) = (f64::INFINITY, 0f64);
        for _ in 0..200_000 {
            let v = normalised(std::array::from_fn(|_| rng.random_range(-1.0..1.0)));
            let f = spread(&v);
            lo = lo.min(f);
            hi = hi.max(f);
        }
        assert!(hi <= c, "f reaches {hi} above C {c}");
        assert!(hi >= c / C_HEADROOM * 0.997, "C {c} loose: f at most {hi}");
        assert!(lo / c > 0.95, "bound ratio {}", lo / c);
    }

    fn grid_points(cells: &[(i32, i32, i32)], anisotropy: f64) -> Vec<Point> {
        cells
            .iter()
            .map(|&(z, y, x)| [z as f64 * anisotropy, y as f64, x as f64])
            .collect()
    }

    #[test]
    fn the_bound_holds_below_every_exact_distance_sum() {
        let cells: Vec<(i32, i32, i32)> = (0..12)
            .flat_map(|z| (0..15).flat_map(move |y| (0..20).map(move |x| (z, y, x * (y % 3 + 1)))))
            .collect();
        let pts = grid_points(&cells, 2.5);
        let lb = lower_bounds(&pts);
        for j in (0..pts.len()).step_by(41) {
            let e = summed_distance(&pts, j);
            assert!(lb[j] <= e, "bound {} above E {}", lb[j], e);
            assert!(lb[j] >= e * 0.95, "bound {} not tight for E {}", lb[j], e);
        }
    }

    #[test]
    fn symmetric_solids_break_ties_like_brute_force() {
        // A cube and a spherical shell have many tied optima.
        let cube: Vec<(i32, i32, i32)> = (0..6)
            .flat_map(|z| (0..6).flat_map(move |y| (0..6).map(move |x| (z, y, x))))
            .collect();
        let shell: Vec<(i32, i32, i32)> = (-8..=8)
            .flat_map(|z| (-8..=8).flat_map(move |y| (-8..=8).map(move |x| (z, y, x))))
            .filter(|&(z, y, x)| (25..=64).contains(&(z * z + y * y + x * x)))
            .collect();
        for pts in [cube, shell] {
            let p = grid_points(&pts, 1.0);
            assert_eq!(medoid_3d(&p), medoid_3d_brute_force(&p));
        }
    }

    /// Anisotropy counts: an L of a bar along z (10 voxels) and a longer one
    /// along x (29); stretching z by 6 makes the z bar's voxels far from
    /// the x bar's, and the medoid moves further along x (from x = 10 to
    /// x = 12, worked by brute force in NumPy).
    #[test]
    fn anisotropy_counts_in_the_distances() {
        let mut cells: Vec<(i32, i32, i32)> = (0..10).map(|z| (z, 0, 0)).collect();
        cells.extend((1..30).map(|x| (0, 0, x)));
        let flat = grid_points(&cells, 1.0);
        let stretched = grid_points(&cells, 6.0);
        let (a, b) = (medoid_3d(&flat), medoid_3d(&stretched));
        assert_eq!(a, medoid_3d_brute_force(&flat));
        assert_eq!(b, medoid_3d_brute_force(&stretched));
        assert_eq!((cells[a], cells[b]), ((0, 0, 10), (0, 0, 12)));
    }

    fn solid() -> impl Strategy<Value = (Vec<(i32, i32, i32)>, f64)> {
        // Unions of random ellipsoids: convex, concave, split; anisotropic.
        let blob = (0i32..12, 0i32..30, 0i32..30, 1i32..5, 1i32..10, 1i32..10);
        (prop::collection::vec(blob, 1..4), 1.0f64..4.0).prop_map(|(blobs, a)| {
            let mut set = std::collections::BTreeSet::new();
            for (cz, cy, cx, rz, ry, rx) in blobs {
                for z in cz - 5..=cz + 5 {
                    for y in cy - 10..=cy + 10 {
                        for x in cx - 10..=cx + 10 {
                            let (dz, dy, dx) = ((z - cz) as f64, (y - cy) as f64, (x - cx) as f64);
                            if (dz / rz as f64).powi(2)
                                + (dy / ry as f64).powi(2)
                                + (dx / rx as f64).powi(2)
                                <= 1.0
                            {
                                set.insert((z, y, x));
                            }
                        }
                    }
                }
            }
            (set.into_iter().collect(), a)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        #[test]
        fn equals_brute_force_on_random_solids((cells, a) in solid()) {
            let p = grid_points(&cells, a);
            prop_assert_eq!(medoid_3d(&p), medoid_3d_brute_force(&p));
        }
    }
}
