//! Convolution on slices: forward, gradient with respect to the input (which
//! is also a transposed convolution's forward) and to the weight. NCHW
//! tensors, weights (O, C, KH, KW), through im2col and gemm.

use rayon::prelude::*;

use super::elem::{Around, Elem};
use super::im2col::{col2im, im2col, Geom};
use super::matmul::{matmul, matmul_wide, Mat};
use super::{shifted, shifted_weight, winograd};

/// The sizes of one convolution: input N×C×H×W, output N×O×OH×OW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Dims {
    pub fn new(n: usize, c: usize, h: usize, w: usize, o: usize, g: &Geom) -> Dims {
        let (oh, ow) = g.out_size(h, w);
        Dims {
            n,
            c,
            h,
            w,
            o,
            oh,
            ow,
        }
    }

    fn ck(&self, g: &Geom) -> usize {
        self.c * g.kh * g.kw
    }

    fn p(&self) -> usize {
        self.oh * self.ow
    }
}

fn threads() -> usize {
    rayon::current_num_threads()
}

/// Per image, in parallel when there are enough images to go round, else one
/// image at a time with multi-threaded products. `f(image, out_chunk, threads)`.
fn per_image<T: Elem>(out: &mut [T], n: usize, f: impl Fn(usize, &mut [T], usize) + Sync + Send) {
    let chunk = out.len() / n.max(1);
    if n >= threads() && n > 1 {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, o)| f(i, o, 1));
    } else {
        out.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, o)| f(i, o, threads()));
    }
}

/// out = around(conv(x, weight)), of shape N×O×OH×OW.
pub fn forward<T: Elem>(x: &[T], weight: &[T], around: Around<T>, d: &Dims, g: &Geom) -> Vec<T> {
    let (ck, p) = (d.ck(g), d.p());
    let mut out = vec![T::zero(); d.n * d.o * p];
    let wino = winograd::applies(g, d.h, d.w).then(|| winograd::forward_kernel(weight, d.c, d.o));
    per_image(&mut out, d.n, |i, out_i, threads| {
        let xi = &x[i * d.c * d.h * d.w..(i + 1) * d.c * d.h * d.w];
        let around = around.image(i, d.o, p);
        if let Some(v) = &wino {
            winograd::forward_image(xi, v, out_i, (d.c, d.h, d.w), d.o, g, threads, &around);
            return;
        }
        if shifted::applies(g, d.h, d.w) {
            shifted::forward_image(xi, weight, out_i, (d.c, d.h, d.w), d.o, g, threads, &around);
            return;
        }
        for (r, row) in out_i.chunks_mut(p).enumerate() {
            around.init(r, row, 0, p);
        }
        let one_by_one = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
        let cols = if one_by_one {
            None
        } else {
            let mut cols = vec![T::zero(); ck * p];
            im2col(xi, d.c, d.h, d.w, g, &mut cols);
            Some(cols)
        };
        matmul_wide(
            out_i,
            Mat::new(weight, d.o, ck),
            Mat::new(cols.as_deref().unwrap_or(xi), ck, p),
            around.adds(),
            threads,
        );
        if around.relu {
            out_i.par_chunks_mut(p).for_each(|row| around.finish(row));
        }
    });
    out
}

/// The gradient with respect to the input: N×C×H×W from grad N×O×OH×OW.
pub fn grad_input<T: Elem>(grad: &[T], weight: &[T], d: &Dims, g: &Geom) -> Vec<T> {
    let (ck, p) = (d.ck(g), d.p());
    let mut gx = vec![T::zero(); d.n * d.c * d.h * d.w];
    let wino =
        winograd::applies(g, d.h, d.w).then(|| winograd::grad_input_kernel(weight, d.c, d.o));
    per_image(&mut gx, d.n, |i, gx_i, threads| {
        let gi = &grad[i * d.o * p..(i + 1) * d.o * p];
        if let Some(v) = &wino {
            winograd::grad_input_image(gi, v, gx_i, (d.c, d.h, d.w), d.o, g, threads);
            return;
        }
        if shifted::applies(g, d.h, d.w) {
            shifted::grad_input_image(gi, weight, gx_i, (d.c, d.h, d.w), d.o, g, threads);
            return;
        }
        let mut cols = vec![T::zero(); ck * p];
        matmul_wide(
            &mut cols,
            Mat::new(weight, d.o, ck).t(),
            Mat::new(gi, d.o, p),
            false,
            threads,
        );
        col2im(&cols, d.c, d.h, d.w, g, gx_i);
    });
    gx
}

/// The gradient with respect to the weight: O×C×KH×KW, summed over images.
pub fn grad_weight<T: Elem>(x: &[T], grad: &[T], d: &Dims, g: &Geom) -> Vec<T> {
    let (ck, p) = (d.ck(g), d.p());
    let image = |i: usize, acc: &mut Vec<T>, threads: usize| {
        let xi = &x[i * d.c * d.h * d.w..(i + 1) * d.c * d.h * d.w];
        let gi = &grad[i * d.o * p..(i + 1) * d.o * p];
        // Single-threaded: only when the images themselves go in parallel.
        if threads == 1 && winograd::applies(g, d.h, d.w) {
            winograd::grad_weight_image(xi, gi, acc, (d.c, d.h, d.w), d.o, g);
            return;
        }
        if threads == 1 && shifted::applies(g, d.h, d.w) {
            shifted_weight::grad_weight_image(xi, gi, acc, (d.c, d.h, d.w), d.o, g);
            return;
        }
        let mut cols = vec![T::zero(); ck * p];
        im2col(xi, d.c, d.h, d.w, g, &mut cols);
        matmul(
            acc,
            Mat::new(gi, d.o, p),
            Mat::new(&cols, ck, p).t(),
            true,
            threads,
        );
    };
    if d.n >= threads() && d.n > 1 {
        // One buffer per image, summed in image order: the same result
        // whatever the threads' timing (a parallel reduce would not be).
        let per_image: Vec<Vec<T>> = (0..d.n)
            .into_par_iter()
            .map(|i| {
                let mut acc = vec![T::zero(); d.o * ck];
                image(i, &mut acc, 1);
                acc
            })
            .collect();
        let mut total = vec![T::zero(); d.o * ck];
        for acc in per_image {
            total.iter_mut().zip(&acc).for_each(|(t, &a)| *t += a);
        }
        total
    } else {
        let mut acc = vec![T::zero(); d.o * ck];
        for i in 0..d.n {
            image(i, &mut acc, threads());
        }
        acc
    }
}
