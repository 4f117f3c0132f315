//! Sums over a plane in the element type's lanes: the batch norms' statistics
//! and gradients and the bias gradients. A plain `iter().sum()` of f32 is one
//! serial chain of adds (the compiler may not reorder them), and going through
//! f64 per element is slower still; here LANES partial sums run side by side
//! in T over blocks of BLOCK elements and each block's total is added in f64,
//! so no partial sum covers more than BLOCK / LANES elements.

use super::elem::Elem;

pub const LANES: usize = 16;
const BLOCK: usize = 1024;

/// Σ f(x) over `s`.
#[inline(always)]
pub fn plane_sum<T: Elem>(s: &[T], f: impl Fn(T) -> T + Copy) -> f64 {
    s.chunks(BLOCK).map(|b| block_sum(b, f)).sum()
}

#[inline(always)]
fn block_sum<T: Elem>(s: &[T], f: impl Fn(T) -> T) -> f64 {
    let mut acc = [T::zero(); LANES];
    let mut chunks = s.chunks_exact(LANES);
    for ch in &mut chunks {
        for l in 0..LANES {
            acc[l] += f(ch[l]);
        }
    }
    let tail: T = chunks.remainder().iter().map(|&v| f(v)).sum();
    lanes_total(&acc) + tail.to_f64().unwrap_or(f64::NAN)
}

/// The lanes' total in f64.
#[inline(always)]
pub fn lanes_total<T: Elem>(acc: &[T; LANES]) -> f64 {
    acc.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).sum()
}

/// Σ a and Σ a·fb(b) over equal slices, with a = f(x, y) written to `out`:
/// a batch norm's gated gradient and its two sums in one pass.
#[inline(always)]
pub fn map_and_sums<T: Elem>(
    x: &[T],
    y: &[T],
    b: &[T],
    out: &mut [T],
    f: impl Fn(T, T) -> T + Copy,
    fb: impl Fn(T) -> T + Copy,
) -> (f64, f64) {
    let (mut sa, mut sab) = (0.0, 0.0);
    for (((x, y), b), out) in x
        .chunks(BLOCK)
        .zip(y.chunks(BLOCK))
        .zip(b.chunks(BLOCK))
        .zip(out.chunks_mut(BLOCK))
    {
        let (mut acc_a, mut acc_ab) = ([T::zero(); LANES], [T::zero(); LANES]);
        let chunks = x
            .chunks_exact(LANES)
            .zip(y.chunks_exact(LANES))
            .zip(b.chunks_exact(LANES))
            .zip(out.chunks_exact_mut(LANES));
        for (((x, y), b), out) in chunks {
            for l in 0..LANES {
                let a = f(x[l], y[l]);
                out[l] = a;
                acc_a[l] += a;
                acc_ab[l] += a * fb(b[l]);
            }
        }
        let done = x.len() / LANES * LANES;
        let (mut tail_a, mut tail_ab) = (T::zero(), T::zero());
        for j in done..x.len() {
            let a = f(x[j], y[j]);
            out[j] = a;
            tail_a += a;
            tail_ab += a * fb(b[j]);
        }
        sa += lanes_total(&acc_a) + tail_a.to_f64().unwrap_or(f64::NAN);
        sab += lanes_total(&acc_ab) + tail_ab.to_f64().unwrap_or(f64::NAN);
    }
    (sa, sab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_lane_sums_agree_with_f64_sums_on_every_length() {
        for len in [0, 1, 15, 16, 17, 1023, 1024, 1025, 5000, 65536 + 7] {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.3)
                .collect();
            let y: Vec<f32> = (0..len)
                .map(|i| ((i * 104729) % 333) as f32 / 331.0 - 0.5)
                .collect();
            let exact: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            let got = plane_sum(&x, |v| v * v);
            assert!(
                (got - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                "{len}: {got} vs {exact}"
            );

            let mut out = vec![0.0f32; len];
            let gate = |g: f32, y: f32| if y > 0.0 { g } else { 0.0 };
            let (sa, sab) = map_and_sums(&x, &y, &x, &mut out, gate, |b| b - 0.25);
            let gated: Vec<f64> = x.iter().zip(&y).map(|(&g, &y)| gate(g, y) as f64).collect();
            let ea: f64 = gated.iter().sum();
            let eab: f64 = gated
                .iter()
                .zip(&x)
                .map(|(a, &b)| a * (b - 0.25) as f64)
                .sum();
            assert!(
                (sa - ea).abs() <= 1e-6 * ea.abs().max(1.0),
                "{len}: {sa} vs {ea}"
            );
            assert!(
                (sab - eab).abs() <= 1e-6 * eab.abs().max(1.0),
                "{len}: {sab} vs {eab}"
            );
            assert!(out.iter().zip(&gated).all(|(&o, &g)| o as f64 == g));
        }
    }
}
