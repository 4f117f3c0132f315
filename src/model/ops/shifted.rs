//! Stride-1 convolutions whose output has the input's size (ERFNet's 3×1
//! and 1×3 kernels, dilated or not) as one product per kernel tap on a
//! shifted view of the input: no im2col copy, no column buffer.
//!
//! Layout: one image (C, H, W), flat pixel index j = y·W + x. Tap (ki, kj)
//! reads the input at j + dy·W + dx, with dy = ki·dh − ph and dx = kj·dw −
//! pw. Over the output columns whose reads stay inside the image's rows,
//! that is one strided matrix, so out[:, lo..hi] += W_tap · x[:, lo+s..hi+s]
//! is a single gemm. A horizontal shift (dx ≠ 0) also reads, at the |dx|
//! columns of each row nearest the edge, pixels of the neighbouring row
//! where zero padding belongs: those few columns are gathered and their
//! contribution subtracted again. Taps that fall entirely outside the image
//! (a dilation wider than it) read only padding and are skipped.
//!
//! Backward: the input gradient is the same scheme with the taps mirrored
//! (−dy, −dx) and the weights transposed; the weight gradient is in
//! shifted_weight.rs.

use super::elem::{Around, Elem};
use super::im2col::Geom;
use super::matmul::{gemm_add, Dst, Mat, SendPtr};

/// One kernel tap: its shift and its index ki·KW + kj in the weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tap {
    pub dy: isize,
    pub dx: isize,
    pub index: usize,
}

pub(super) fn taps(g: &Geom) -> Vec<Tap> {
    let mut out = Vec::with_capacity(g.kh * g.kw);
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            out.push(Tap {
                dy: (ki * g.dh) as isize - g.ph as isize,
                dx: (kj * g.dw) as isize - g.pw as isize,
                index: ki * g.kw + kj,
            });
        }
    }
    out
}

/// Whether the shifted scheme applies to `g` on h × w images, and pays: the
/// corrected columns of any tap are at most an eighth of a row.
pub fn applies(g: &Geom, h: usize, w: usize) -> bool {
    g.sh == 1
        && g.sw == 1
        && h > 0
        && w > 0
        && g.out_size(h, w) == (h, w)
        && taps(g).iter().all(|t| {
            let dx = t.dx.unsigned_abs();
            dx >= w || dx * 8 <= w
        })
}

impl Tap {
    /// The same tap read the other way (the input gradient's).
    fn mirrored(self) -> Tap {
        Tap {
            dy: -self.dy,
            dx: -self.dx,
            ..self
        }
    }

    /// How far from an output column, in flat pixels, the tap reads.
    pub fn offset(&self, w: usize) -> isize {
        self.dy * w as isize + self.dx
    }

    /// The output columns [lo, hi) whose reads stay inside the image's
    /// rows; None when the tap reads only padding.
    pub fn span(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (dy, dx) = (self.dy, self.dx);
        if dy.unsigned_abs() >= h || dx.unsigned_abs() >= w {
            return None;
        }
        let (h, w) = (h as isize, w as isize);
        let lo = (-dy).max(0) * w + (-dx).max(0);
        let hi = h.min(h - dy) * w - dx.max(0);
        (lo < hi).then_some((lo as usize, hi as usize))
    }

    /// The columns of [lo, hi) whose read wrapped into the neighbouring row.
    pub fn wrapped(&self, w: usize, lo: usize, hi: usize) -> Vec<usize> {
        if self.dx == 0 || lo >= hi {
            return Vec::new();
        }
        let dx = self.dx.unsigned_abs();
        let xs = if self.dx > 0 { w - dx..w } else { 0..dx };
        let mut out = Vec::with_capacity((hi - lo) / w * dx + 2 * dx);
        for y in lo / w..=(hi - 1) / w {
            for x in xs.clone() {
                let j = y * w + x;
                if (lo..hi).contains(&j) {
                    out.push(j);
                }
            }
        }
        out
    }
}

/// Columns `cols` of a rows × p matrix, shifted by `offset`, gathered into
/// a rows × cols.len() matrix.
pub(super) fn gather<T: Elem>(
    src: &[T],
    rows: usize,
    p: usize,
    cols: &[usize],
    offset: isize,
) -> Vec<T> {
    let m = cols.len();
    let mut out = vec![T::zero(); rows * m];
    for (r, row) in out.chunks_mut(m).enumerate() {
        for (v, &j) in row.iter_mut().zip(cols) {
            *v = src[r * p + (j as isize + offset) as usize];
        }
    }
    out
}

/// A tap as the products see it: out[:, j] += a · src[:, j + offset].
struct Shift<'a, T> {
    tap: Tap,
    a: Mat<'a, T>,
}

/// Column blocks [a, b) of p columns, one per thread when wide enough.
fn blocks(p: usize, threads: usize) -> Vec<(usize, usize)> {
    const MIN_COLUMNS: usize = 2048;
    let n = threads.min(p / MIN_COLUMNS).max(1);
    (0..n).map(|t| (p * t / n, p * (t + 1) / n)).collect()
}

/// out (rows × P, zeroed) = around(Σ_taps a_tap · src[:, j + s_tap]) over
/// valid reads, for one image of h × w pixels; the column blocks run in
/// parallel, each with its bias, residual and ReLU while it is in cache.
#[allow(clippy::too_many_arguments)]
fn apply<T: Elem>(
    src: &[T],
    src_rows: usize,
    out: &mut [T],
    out_rows: usize,
    (h, w): (usize, usize),
    shifts: &[Shift<T>],
    threads: usize,
    around: &Around<T>,
) {
    let p = h * w;
    assert_eq!(src.len(), src_rows * p);
    assert_eq!(out.len(), out_rows * p);
    let dst = SendPtr(out.as_mut_ptr());
    let dst = &dst;
    // SAFETY (of `segment`): the blocks' column ranges are disjoint, so each
    // row segment [a, b) belongs to one block alone.
    let segment = |r: usize, a: usize, b: usize| unsafe {
        std::slice::from_raw_parts_mut(dst.0.add(r * p + a), b - a)
    };
    let chunk = |(a, b): (usize, usize)| {
        for r in 0..out_rows {
            around.init(r, segment(r, a, b), a, p);
        }
        for s in shifts {
            let Some((lo, hi)) = s.tap.span(h, w) else {
                continue;
            };
            let (lo, hi) = (lo.max(a), hi.min(b));
            if lo >= hi {
                continue;
            }
            let start = (lo as isize + s.tap.offset(w)) as usize;
            let b_view = Mat {
                data: &src[start..],
                rows: src_rows,
                cols: hi - lo,
                row_stride: p,
                col_stride: 1,
            };
            // SAFETY: this block writes only its columns [a, b) of every
            // row of `out`; the views lie inside their slices.
            unsafe {
                gemm_add(
                    Dst {
                        ptr: dst.0.add(lo),
                        row_stride: p,
                        col_stride: 1,
                    },
                    s.a,
                    b_view,
                    T::one(),
                );
            }
            let wrapped = s.tap.wrapped(w, lo, hi);
            if wrapped.is_empty() {
                continue;
            }
            let m = wrapped.len();
            let gathered = gather(src, src_rows, p, &wrapped, s.tap.offset(w));
            let mut wrong = vec![T::zero(); out_rows * m];
            // SAFETY: `wrong` is a fresh out_rows × m buffer.
            unsafe {
                gemm_add(
                    Dst {
                        ptr: wrong.as_mut_ptr(),
                        row_stride: m,
                        col_stride: 1,
                    },
                    s.a,
                    Mat::new(&gathered, src_rows, m),
                    T::one(),
                );
            }
            for (r, row) in wrong.chunks(m).enumerate() {
                for (&v, &j) in row.iter().zip(&wrapped) {
                    // SAFETY: j lies in this block's columns.
                    unsafe {
                        let cell = dst.0.add(r * p + j);
                        *cell = *cell - v;
                    }
                }
            }
        }
        for r in 0..out_rows {
            around.finish(segment(r, a, b));
        }
    };
    // A block goes chunk by chunk through every tap, so that its part of the
    // output stays in cache from the bias to the ReLU.
    let run = |(a, b): (usize, usize)| {
        // 256 to 2048 columns were measured at [1,1,512²]: 1024 was best,
        // 6 % faster than whole blocks.
        const CHUNK: usize = 1024;
        let mut start = a;
        while start < b {
            let end = (start + CHUNK).min(b);
            chunk((start, end));
            start = end;
        }
    };
    let parts = blocks(p, threads);
    if parts.len() == 1 {
        run(parts[0]);
    } else {
        rayon::scope(|scope| {
            for &part in &parts {
                scope.spawn(move |_| run(part));
            }
        });
    }
}

/// The tap's weights as an O × C matrix of the (O, C, KH, KW) weight.
fn tap_matrix<'a, T>(weight: &'a [T], o: usize, c: usize, g: &Geom, index: usize) -> Mat<'a, T> {
    let kk = g.kh * g.kw;
    Mat {
        data: &weight[index..],
        rows: o,
        cols: c,
        row_stride: c * kk,
        col_stride: kk,
    }
}

/// out (O × H·W, zeroed) = around(conv(x)) for one image (C × H·W).
#[allow(clippy::too_many_arguments)]
pub fn forward_image<T: Elem>(
    x: &[T],
    weight: &[T],
    out: &mut [T],
    (c, h, w): (usize, usize, usize),
    o: usize,
    g: &Geom,
    threads: usize,
    around: &Around<T>,
) {
    let shifts: Vec<Shift<T>> = taps(g)
        .into_iter()
        .map(|tap| Shift {
            tap,
            a: tap_matrix(weight, o, c, g, tap.index),
        })
        .collect();
    apply(x, c, out, o, (h, w), &shifts, threads, around);
}

/// gx (C × H·W) += the input gradient of one image from grad (O × H·W).
pub fn grad_input_image<T: Elem>(
    grad: &[T],
    weight: &[T],
    gx: &mut [T],
    (c, h, w): (usize, usize, usize),
    o: usize,
    g: &Geom,
    threads: usize,
) {
    let shifts: Vec<Shift<T>> = taps(g)
        .into_iter()
        .map(|tap| Shift {
            tap: tap.mirrored(),
            a: tap_matrix(weight, o, c, g, tap.index).t(),
        })
        .collect();
    apply(
        grad,
        o,
        gx,
        c,
        (h, w),
        &shifts,
        threads,
        &Around::bias(None),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::im2col::{col2im, im2col};
    use crate::model::ops::matmul::matmul;

    fn values(n: usize, seed: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1009) as f64) / 504.5 - 1.0)
            .collect()
    }

    /// The im2col reference: out = W · im2col(x).
    fn reference(
        x: &[f64],
        wt: &[f64],
        c: usize,
        h: usize,
        w: usize,
        o: usize,
        g: &Geom,
    ) -> Vec<f64> {
        let ck = c * g.kh * g.kw;
        let mut cols = vec![0.0; ck * h * w];
        im2col(x, c, h, w, g, &mut cols);
        let mut out = vec![0.0; o * h * w];
        matmul(
            &mut out,
            Mat::new(wt, o, ck),
            Mat::new(&cols, ck, h * w),
            false,
            1,
        );
        out
    }

    fn geometries() -> Vec<Geom> {
        vec![
            Geom::kernel(3, 1).pad(1, 0),
            Geom::kernel(1, 3).pad(0, 1),
            Geom::kernel(3, 1).pad(2, 0).dilate(2, 1),
            Geom::kernel(1, 3).pad(0, 2).dilate(1, 2),
            Geom::kernel(3, 3).pad(1, 1),
            Geom::kernel(1, 1),
            // Wider than some of the images: those taps read only padding.
            Geom::kernel(3, 1).pad(16, 0).dilate(16, 1),
            Geom::kernel(1, 3).pad(0, 16).dilate(1, 16),
        ]
    }

    #[test]
    fn shifted_products_equal_im2col_forward_and_both_gradients() {
        let mut checked = 0;
        // Few channels, and enough for the transposed weight gradient.
        for ((c, o), g) in [(3, 4), (32, 33)]
            .into_iter()
            .flat_map(|co| geometries().into_iter().map(move |g| (co, g)))
        {
            for (h, w) in [(9, 8), (5, 17), (16, 16), (40, 130)] {
                if !applies(&g, h, w) {
                    continue;
                }
                checked += 1;
                let p = h * w;
                let x = values(c * p, 1);
                let wt = values(o * c * g.kh * g.kw, 2);
                let want = reference(&x, &wt, c, h, w, o, &g);
                for threads in [1, 3] {
                    let mut got = vec![0.0; o * p];
                    let around = Around::bias(None);
                    forward_image(&x, &wt, &mut got, (c, h, w), o, &g, threads, &around);
                    let err = want
                        .iter()
                        .zip(&got)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    assert!(err < 1e-12, "{g:?} {h}×{w}: {err}");
                }

                let grad = values(o * p, 3);
                // Input gradient: col2im(Wᵀ · grad).
                let ck = c * g.kh * g.kw;
                let mut cols = vec![0.0; ck * p];
                matmul(
                    &mut cols,
                    Mat::new(&wt, o, ck).t(),
                    Mat::new(&grad, o, p),
                    false,
                    1,
                );
                let mut want_gx = vec![0.0; c * p];
                col2im(&cols, c, h, w, &g, &mut want_gx);
                let mut gx = vec![0.0; c * p];
                grad_input_image(&grad, &wt, &mut gx, (c, h, w), o, &g, 2);
                let err = want_gx
                    .iter()
                    .zip(&gx)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-12, "grad input {g:?} {h}×{w}: {err}");

                // Weight gradient: grad · im2col(x)ᵀ.
                im2col(&x, c, h, w, &g, &mut cols);
                let mut want_gw = vec![0.0; o * ck];
                matmul(
                    &mut want_gw,
                    Mat::new(&grad, o, p),
                    Mat::new(&cols, ck, p).t(),
                    false,
                    1,
                );
                let mut gw = vec![0.0; o * ck];
                super::super::shifted_weight::grad_weight_image(
                    &x,
                    &grad,
                    &mut gw,
                    (c, h, w),
                    o,
                    &g,
                );
                let err = want_gw
                    .iter()
                    .zip(&gw)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-11, "grad weight {g:?} {h}×{w}: {err}");
            }
        }
        assert!(checked >= 48, "only {checked} cases took the shifted path");
    }

    #[test]
    fn the_scheme_declines_what_it_would_do_badly() {
        assert!(applies(&Geom::kernel(1, 3).pad(0, 4).dilate(1, 4), 64, 64));
        // Dilation 16 on 64 columns: a quarter of each row would need correcting.
        assert!(!applies(
            &Geom::kernel(1, 3).pad(0, 16).dilate(1, 16),
            64,
            64
        ));
        // ...but on 16 columns the shifted taps read only padding.
        assert!(applies(
            &Geom::kernel(1, 3).pad(0, 16).dilate(1, 16),
            16,
            16
        ));
        assert!(!applies(&Geom::kernel(3, 3).stride(2).pad(1, 1), 64, 64));
        assert!(!applies(&Geom::kernel(3, 3), 64, 64));
    }
}
