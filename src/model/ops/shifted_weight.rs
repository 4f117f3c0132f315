//! The weight gradient of a shifted convolution (see shifted.rs): per tap,
//! grad[:, lo..hi] · x[:, lo+s..hi+s]ᵀ, less the share of the columns whose
//! read wrapped into the neighbouring row.

use super::elem::Elem;
use super::im2col::Geom;
use super::matmul::{gemm_add, Dst, Mat};
use super::shifted::{gather, taps, Tap};

/// gw (O, C, KH, KW) += the weight gradient of one image: per tap,
/// grad[:, lo..hi] · x[:, lo+s..hi+s]ᵀ, less the wrapped columns' share.
///
/// With enough channels, both factors run along the pixels, the long inner dimension, which is
/// the layout gemm packs worst; so the pixels go in chunks, each chunk of
/// grad transposed once (pixels × O), the input transposed once for the
/// whole image (pixels × C, each tap's shifted chunk a slice of it), and the
/// product of the two transposed chunks is added.
pub fn grad_weight_image<T: Elem>(
    x: &[T],
    grad: &[T],
    gw: &mut [T],
    (c, h, w): (usize, usize, usize),
    o: usize,
    g: &Geom,
) {
    // Measured per image, one thread (f32, 3-tap kernels): with 64 channels
    // at 128² the transposed chunks take 3.2 ms against 6.0 ms for the
    // plain product, with 32 channels 1.1 against 1.5 ms; with 16 channels
    // the chunks' products are too small to pay (2.2 against 0.7 ms).
    if o.min(c) < 32 {
        return grad_weight_plain(x, grad, gw, (c, h, w), o, g);
    }
    const CHUNK: usize = 1024;
    let p = h * w;
    let kk = g.kh * g.kw;
    assert_eq!(gw.len(), o * c * kk);
    assert_eq!(x.len(), c * p);
    assert_eq!(grad.len(), o * p);
    let spans: Vec<(Tap, (usize, usize))> = taps(g)
        .into_iter()
        .filter_map(|t| Some((t, t.span(h, w)?)))
        .collect();
    let base = gw.as_mut_ptr();
    let dst = |t: &Tap| Dst {
        // SAFETY (of the products below): the tap's O × C entries of gw lie
        // at index + (o·C + c)·KK, inside gw.
        ptr: unsafe { base.add(t.index) },
        row_stride: c * kk,
        col_stride: kk,
    };
    let mut grad_t = vec![T::zero(); CHUNK * o];
    // The whole input transposed once: every tap's shifted chunk is a slice
    // of it (transposing it per tap and chunk took a third of the weight
    // gradient's time with 3-tap kernels).
    let mut x_t = vec![T::zero(); p * c];
    transpose(x, c, p, 0, p, &mut x_t);
    let mut start = 0;
    while start < p {
        let end = (start + CHUNK).min(p);
        transpose(grad, o, p, start, end, &mut grad_t);
        for (t, (lo, hi)) in &spans {
            let (a, b) = ((*lo).max(start), (*hi).min(end));
            if a >= b {
                continue;
            }
            let n = b - a;
            let from = (a as isize + t.offset(w)) as usize;
            let grad_chunk = Mat {
                data: &grad_t[(a - start) * o..],
                rows: o,
                cols: n,
                row_stride: 1,
                col_stride: o,
            };
            // SAFETY: see `dst`; the views lie inside their buffers.
            unsafe {
                gemm_add(
                    dst(t),
                    grad_chunk,
                    Mat::new(&x_t[from * c..], n, c),
                    T::one(),
                )
            };
        }
        start = end;
    }
    for (t, (lo, hi)) in &spans {
        // SAFETY: see `dst`.
        unsafe { subtract_wrapped(x, grad, dst(t), (c, h, w), o, t, (*lo, *hi)) };
    }
}

/// Takes the wrapped columns' share back out of a tap's weight gradient.
///
/// # Safety
/// `dst` must address the tap's O × C entries of the weight gradient.
unsafe fn subtract_wrapped<T: Elem>(
    x: &[T],
    grad: &[T],
    dst: Dst<T>,
    (c, h, w): (usize, usize, usize),
    o: usize,
    t: &Tap,
    (lo, hi): (usize, usize),
) {
    let wrapped = t.wrapped(w, lo, hi);
    if wrapped.is_empty() {
        return;
    }
    let (p, m) = (h * w, wrapped.len());
    let gg = gather(grad, o, p, &wrapped, 0);
    let gx = gather(x, c, p, &wrapped, t.offset(w));
    gemm_add(dst, Mat::new(&gg, o, m), Mat::new(&gx, c, m).t(), -T::one());
}

/// The weight gradient as one product per tap on the untransposed views.
fn grad_weight_plain<T: Elem>(
    x: &[T],
    grad: &[T],
    gw: &mut [T],
    (c, h, w): (usize, usize, usize),
    o: usize,
    g: &Geom,
) {
    let p = h * w;
    let kk = g.kh * g.kw;
    for t in taps(g) {
        let Some((lo, hi)) = t.span(h, w) else {
            continue;
        };
        let start = (lo as isize + t.offset(w)) as usize;
        let dst = Dst {
            // SAFETY (of the products below): the tap's O × C entries of gw
            // lie at index + (o·C + c)·KK, inside gw.
            ptr: gw[t.index..].as_mut_ptr(),
            row_stride: c * kk,
            col_stride: kk,
        };
        let grad_view = Mat {
            data: &grad[lo..],
            rows: o,
            cols: hi - lo,
            row_stride: p,
            col_stride: 1,
        };
        let x_view = Mat {
            data: &x[start..],
            rows: c,
            cols: hi - lo,
            row_stride: p,
            col_stride: 1,
        };
        // SAFETY: see `dst`; the views lie inside their slices.
        unsafe {
            gemm_add(dst, grad_view, x_view.t(), T::one());
            subtract_wrapped(x, grad, dst, (c, h, w), o, &t, (lo, hi));
        }
    }
}

/// out[(j − a)·rows + r] = src[r·p + j] for j in [a, b): columns a..b of a
/// rows × p matrix, transposed, in tiles that stay in cache.
fn transpose<T: Elem>(src: &[T], rows: usize, p: usize, a: usize, b: usize, out: &mut [T]) {
    const TILE: usize = 16;
    let n = b - a;
    debug_assert!(out.len() >= n * rows);
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for j0 in (0..n).step_by(TILE) {
            let j1 = (j0 + TILE).min(n);
            for r in r0..r1 {
                let row = &src[r * p + a..r * p + b];
                for j in j0..j1 {
                    out[j * rows + r] = row[j];
                }
            }
        }
    }
}
