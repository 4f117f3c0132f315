//! Three-tap stride-1 convolutions that keep the image's size (ERFNet's 3×1
//! and 1×3, dilated or not) by 1D Winograd F(4, 3) (Lavin & Gray, arXiv
//! 1509.09308): per tile of four outputs along the kernel's axis, six
//! products of transformed inputs and weights instead of twelve, so half the
//! multiply-adds of the direct convolution, done as six gemms per chunk of
//! tiles.
//!
//! A tile is four outputs d apart along the axis (d the dilation) and reads
//! the six inputs d apart from one before its first output to two after its
//! last, zero outside the image. Tiles start at 4d·k + r (r < d) along the
//! axis, at every position across it; outputs past the image's edge are
//! computed and dropped, so the scheme is taken only where they are at most a
//! quarter of the image.
//!
//! Per chunk of tiles: U_i = (Bᵀ d)_i (C × T), M_i = V_i · U_i with V_i =
//! (G g)_i (O × C), out = Aᵀ M, each output written once (bias, residual and
//! ReLU as it is). The input gradient is the same with the kernel mirrored
//! and transposed; the weight gradient dg = Gᵀ Σ_tiles (A grad) ⊙ (Bᵀ d).

use std::any::Any;
use std::cell::RefCell;

use rayon::prelude::*;

use super::elem::{Around, Elem};
use super::im2col::Geom;
use super::matmul::{matmul, Mat, SendPtr};

#[macro_use]
#[path = "winograd_tiles.rs"]
mod tiles;
use tiles::{cast, transform_grads, transform_inputs, transform_outputs, Tiling};

/// The kernel transform G (6 × 3).
const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Whether the Winograd scheme takes `g` on h × w images.
pub fn applies(g: &Geom, h: usize, w: usize) -> bool {
    Tiling::new(g, h, w).is_some()
}

/// The transformed kernel V (6 × rows × cols): V_i[r][c] = Σ_k G[i][k]·tap(r, c, k).
fn kernel_transform<T: Elem>(
    rows: usize,
    cols: usize,
    tap: impl Fn(usize, usize, usize) -> T,
) -> Vec<T> {
    let g: Vec<[T; 3]> = G.iter().map(|r| r.map(cast::<T>)).collect();
    let mut v = vec![T::zero(); 6 * rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let k = [tap(r, c, 0), tap(r, c, 1), tap(r, c, 2)];
            for (i, gi) in g.iter().enumerate() {
                v[(i * rows + r) * cols + c] = gi[0] * k[0] + gi[1] * k[1] + gi[2] * k[2];
            }
        }
    }
    v
}

/// gw (O, C, 3) += the weight gradient of one image, single-threaded:
/// dg = Gᵀ Σ_tiles (A grad) ⊙ (Bᵀ x), as six products per chunk of
/// transformed gradients and inputs. Unlike shifted_weight.rs, no transposes:
/// a chunk's inner dimension is short (measured, 64 channels at 128²: 4.3 ms
/// as is, 9.0 ms with both factors transposed, 9.4 ms by shifted taps).
pub fn grad_weight_image<T: Elem>(
    x: &[T],
    grad: &[T],
    gw: &mut [T],
    (c, h, w): (usize, usize, usize),
    o: usize,
    g: &Geom,
) {
    let t = Tiling::new(g, h, w).expect("winograd::applies was checked");
    assert_eq!(gw.len(), o * c * 3);
    let per = t.per_line();
    let lines_per_chunk = t.lines_per_chunk();
    let lines = t.lines();
    let most = lines_per_chunk.min(lines) * per;
    let mut z = vec![T::zero(); 6 * o * c];
    with_scratch(6 * (c + o) * most, |buffer: &mut [T]| {
        let (u, gy) = buffer.split_at_mut(6 * c * most);
        let mut l0 = 0;
        while l0 < lines {
            let l1 = (l0 + lines_per_chunk).min(lines);
            let tiles = (l1 - l0) * per;
            transform_inputs(&t, x, c, (l0, l1), &mut u[..6 * c * tiles]);
            transform_grads(&t, grad, o, (l0, l1), &mut gy[..6 * o * tiles]);
            for i in 0..6 {
                let ui = &u[i * c * tiles..(i + 1) * c * tiles];
                let gi = &gy[i * o * tiles..(i + 1) * o * tiles];
                matmul(
                    &mut z[i * o * c..(i + 1) * o * c],
                    Mat::new(gi, o, tiles),
                    Mat::new(ui, c, tiles).t(),
                    true,
                    1,
                );
            }
            l0 = l1;
        }
    });
    with_avx2!(add_kernel_gradient(&z, gw))
}

/// gw[j·3 + k] += Σ_i G[i][k]·z_i[j]: over whole rows of z (a tap per pass,
/// contiguous), then woven into gw's (O, C, 3) layout.
#[inline(always)]
fn add_kernel_gradient<T: Elem>(z: &[T], gw: &mut [T]) {
    let n = gw.len() / 3;
    let zs: [&[T]; 6] = std::array::from_fn(|i| &z[i * n..(i + 1) * n]);
    let mut tap = vec![T::zero(); n];
    for k in 0..3 {
        let g: [T; 6] = std::array::from_fn(|i| cast(G[i][k]));
        for (j, v) in tap.iter_mut().enumerate() {
            *v = g[0] * zs[0][j]
                + g[1] * zs[1][j]
                + g[2] * zs[2][j]
                + g[3] * zs[3][j]
                + g[4] * zs[4][j]
                + g[5] * zs[5][j];
        }
        for (cell, &v) in gw.chunks_exact_mut(3).zip(&tap) {
            cell[k] += v;
        }
    }
}

/// Runs `f` on `len` elements of a buffer this thread keeps between calls:
/// zeroing a fresh one for every convolution took 8 % of inference. Its
/// contents are stale; `f` writes before it reads.
fn with_scratch<T: Elem, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    thread_local! {
        static F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        static F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    }
    fn kept<T: Elem, U: 'static, R>(
        cell: &RefCell<Vec<U>>,
        len: usize,
        f: &mut Option<impl FnOnce(&mut [T]) -> R>,
    ) -> Option<R> {
        let mut held = cell.try_borrow_mut().ok()?;
        let v = (&mut *held as &mut dyn Any).downcast_mut::<Vec<T>>()?;
        if v.len() < len {
            v.resize(len, T::zero());
        }
        Some(f.take()?(&mut v[..len]))
    }
    let mut f = Some(f);
    if let Some(r) = F32.with(|c| kept(c, len, &mut f)) {
        return r;
    }
    if let Some(r) = F64.with(|c| kept(c, len, &mut f)) {
        return r;
    }
    let f = f.expect("not taken: neither buffer was used");
    f(&mut vec![T::zero(); len])
}

/// out (out_ch × H·W) = around(Σ taps) over one image `src` (in_ch × H·W),
/// with the transformed kernel `v` (6 × out_ch × in_ch); lines split over
/// `threads`, chunk by chunk.
#[allow(clippy::too_many_arguments)]
fn apply<T: Elem>(
    t: &Tiling,
    src: &[T],
    in_ch: usize,
    v: &[T],
    out: &mut [T],
    out_ch: usize,
    threads: usize,
    around: &Around<T>,
) {
    let p = t.h * t.w;
    assert_eq!(src.len(), in_ch * p);
    assert_eq!(out.len(), out_ch * p);
    let dst = SendPtr(out.as_mut_ptr());
    let dst = &dst;
    let per = t.per_line();
    let lines_per_chunk = t.lines_per_chunk();
    let run = |(a, b): (usize, usize)| {
        let most = lines_per_chunk.min(b - a) * per;
        with_scratch(6 * (in_ch + out_ch) * most, |buffer: &mut [T]| {
            let (u, m) = buffer.split_at_mut(6 * in_ch * most);
            let mut l0 = a;
            while l0 < b {
                let l1 = (l0 + lines_per_chunk).min(b);
                let tiles = (l1 - l0) * per;
                let (u, m) = (&mut u[..6 * in_ch * tiles], &mut m[..6 * out_ch * tiles]);
                transform_inputs(t, src, in_ch, (l0, l1), u);
                for i in 0..6 {
                    matmul(
                        &mut m[i * out_ch * tiles..(i + 1) * out_ch * tiles],
                        Mat::new(
                            &v[i * out_ch * in_ch..(i + 1) * out_ch * in_ch],
                            out_ch,
                            in_ch,
                        ),
                        Mat::new(&u[i * in_ch * tiles..(i + 1) * in_ch * tiles], in_ch, tiles),
                        false,
                        1,
                    );
                }
                transform_outputs(t, m, out_ch, (l0, l1), dst, around);
                l0 = l1;
            }
        });
    };
    let lines = t.lines();
    let parts = threads.min(lines.div_ceil(lines_per_chunk)).max(1);
    if parts == 1 {
        run((0, lines));
    } else {
        (0..parts)
            .into_par_iter()
            .for_each(|k| run((lines * k / parts, lines * (k + 1) / parts)));
    }
}

/// The transformed kernel of the forward convolution, weight (O, C, 3):
/// once per call, shared by its images.
pub fn forward_kernel<T: Elem>(weight: &[T], c: usize, o: usize) -> Vec<T> {
    kernel_transform(o, c, |r, ci, k| weight[(r * c + ci) * 3 + k])
}

/// The transformed kernel of the input gradient: mirrored and transposed.
pub fn grad_input_kernel<T: Elem>(weight: &[T], c: usize, o: usize) -> Vec<T> {
    kernel_transform(c, o, |ci, r, k| weight[(r * c + ci) * 3 + 2 - k])
}

/// out (O × H·W) = around(conv(x)) for one image x (C × H·W), `v` from
/// forward_kernel.
#[allow(clippy::too_many_arguments)]
pub fn forward_image<T: Elem>(
    x: &[T],
    v: &[T],
    out: &mut [T],
    (c, h, w): (usize, usize, usize),
    o: usize,
    g: &Geom,
    threads: usize,
    around: &Around<T>,
) {
    let t = Tiling::new(g, h, w).expect("winograd::applies was checked");
    apply(&t, x, c, v, out, o, threads, around);
}

/// gx (C × H·W) = the input gradient of one image from grad (O × H·W), `v`
/// from grad_input_kernel.
#[allow(clippy::too_many_arguments)]
pub fn grad_input_image<T: Elem>(
    grad: &[T],
    v: &[T],
    gx: &mut [T],
    (c, h, w): (usize, usize, usize),
    o: usize,
    g: &Geom,
    threads: usize,
) {
    let t = Tiling::new(g, h, w).expect("winograd::applies was checked");
    apply(&t, grad, o, v, gx, c, threads, &Around::bias(None));
}

#[cfg(test)]
#[path = "winograd_tests.rs"]
mod tests;
