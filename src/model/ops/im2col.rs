//! im2col / col2im for 2D convolutions with per-axis kernel, stride,
//! padding and dilation (ERFNet's 3×1 and 1×3 dilated kernels included).
//!
//! Layout: one image (C, H, W) ↔ columns (C·KH·KW, OH·OW), row index
//! (c·KH + ki)·KW + kj, column index oy·OW + ox.

use rayon::prelude::*;

use super::elem::Elem;

/// Convolution geometry, per axis (y, x).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
}

impl Geom {
    /// A kh × kw kernel with stride 1, no padding, no dilation.
    pub fn kernel(kh: usize, kw: usize) -> Geom {
        Geom {
            kh,
            kw,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
            dh: 1,
            dw: 1,
        }
    }

    pub fn stride(self, s: usize) -> Geom {
        Geom {
            sh: s,
            sw: s,
            ..self
        }
    }

    pub fn pad(self, ph: usize, pw: usize) -> Geom {
        Geom { ph, pw, ..self }
    }

    pub fn dilate(self, dh: usize, dw: usize) -> Geom {
        Geom { dh, dw, ..self }
    }

    /// The output size for an input of h × w (PyTorch's formula).
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let o = |n: usize, k: usize, s: usize, p: usize, d: usize| {
            (n + 2 * p).saturating_sub(d * (k - 1) + 1) / s + 1
        };
        (
            o(h, self.kh, self.sh, self.ph, self.dh),
            o(w, self.kw, self.sw, self.pw, self.dw),
        )
    }
}

/// Below this many column elements, threads cost more than they save.
const PAR_MIN: usize = 1 << 15;

pub fn im2col<T: Elem>(x: &[T], c: usize, h: usize, w: usize, g: &Geom, cols: &mut [T]) {
    let (oh, ow) = g.out_size(h, w);
    let p = oh * ow;
    let rows = c * g.kh * g.kw;
    debug_assert_eq!(cols.len(), rows * p);
    let fill = |r: usize, row: &mut [T]| {
        let kj = r % g.kw;
        let ki = (r / g.kw) % g.kh;
        let ci = r / (g.kw * g.kh);
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        let xoff = (kj * g.dw) as isize - g.pw as isize;
        for oy in 0..oh {
            let out = &mut row[oy * ow..(oy + 1) * ow];
            let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
            if iy < 0 || iy >= h as isize {
                out.fill(T::zero());
                continue;
            }
            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
            if g.sw == 1 {
                // ix = ox + xoff: zeros, a straight copy, zeros.
                let lo = (-xoff).clamp(0, ow as isize) as usize;
                let hi = (w as isize - xoff).clamp(lo as isize, ow as isize) as usize;
                out[..lo].fill(T::zero());
                if hi > lo {
                    out[lo..hi].copy_from_slice(
                        &src[(lo as isize + xoff) as usize..(hi as isize + xoff) as usize],
                    );
                }
                out[hi..].fill(T::zero());
            } else {
                for (ox, v) in out.iter_mut().enumerate() {
                    let ix = (ox * g.sw) as isize + xoff;
                    *v = if ix >= 0 && ix < w as isize {
                        src[ix as usize]
                    } else {
                        T::zero()
                    };
                }
            }
        }
    };
    if rows * p >= PAR_MIN {
        cols.par_chunks_mut(p)
            .enumerate()
            .for_each(|(r, row)| fill(r, row));
    } else {
        cols.chunks_mut(p)
            .enumerate()
            .for_each(|(r, row)| fill(r, row));
    }
}

/// Adds the columns back onto the image (the adjoint of im2col).
pub fn col2im<T: Elem>(cols: &[T], c: usize, h: usize, w: usize, g: &Geom, x: &mut [T]) {
    let (oh, ow) = g.out_size(h, w);
    let p = oh * ow;
    debug_assert_eq!(x.len(), c * h * w);
    let add = |ci: usize, plane: &mut [T]| {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let r = (ci * g.kh + ki) * g.kw + kj;
                let row = &cols[r * p..(r + 1) * p];
                let xoff = (kj * g.dw) as isize - g.pw as isize;
                for oy in 0..oh {
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    let src = &row[oy * ow..(oy + 1) * ow];
                    if g.sw == 1 {
                        let lo = (-xoff).clamp(0, ow as isize) as usize;
                        let hi = (w as isize - xoff).clamp(lo as isize, ow as isize) as usize;
                        if hi == lo {
                            continue;
                        }
                        let d =
                            &mut dst[(lo as isize + xoff) as usize..(hi as isize + xoff) as usize];
                        for (a, &b) in d.iter_mut().zip(&src[lo..hi]) {
                            *a += b;
                        }
                    } else {
                        for (ox, &v) in src.iter().enumerate() {
                            let ix = (ox * g.sw) as isize + xoff;
                            if ix >= 0 && ix < w as isize {
                                dst[ix as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    };
    if c * g.kh * g.kw * p >= PAR_MIN {
        x.par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(ci, plane)| add(ci, plane));
    } else {
        x.chunks_mut(h * w)
            .enumerate()
            .for_each(|(ci, plane)| add(ci, plane));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩ for every geometry: col2im is the adjoint.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let geoms = [
            Geom::kernel(3, 3).pad(1, 1),
            Geom::kernel(3, 1).pad(2, 0).dilate(2, 1),
            Geom::kernel(1, 3).pad(0, 4).dilate(1, 4),
            Geom::kernel(3, 3).stride(2).pad(1, 1),
            Geom::kernel(2, 2).stride(2),
            // Dilation wider than the image (ERFNet's 16 at 1/8 scale).
            Geom::kernel(1, 3).pad(0, 16).dilate(1, 16),
            Geom::kernel(3, 1).pad(16, 0).dilate(16, 1),
        ];
        for g in geoms {
            for (c, h, w) in [(2, 7, 5), (3, 8, 8), (1, 5, 9), (2, 3, 4)] {
                let x: Vec<f64> = (0..c * h * w)
                    .map(|i| ((i * 37 % 11) as f64) - 5.0)
                    .collect();
                let (oh, ow) = g.out_size(h, w);
                let n = c * g.kh * g.kw * oh * ow;
                let y: Vec<f64> = (0..n).map(|i| ((i * 13 % 7) as f64) - 3.0).collect();
                let mut cols = vec![0.0; n];
                im2col(&x, c, h, w, &g, &mut cols);
                let mut back = vec![0.0; c * h * w];
                col2im(&y, c, h, w, &g, &mut back);
                let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
                let rhs: f64 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
                assert_eq!(lhs, rhs, "{g:?} on {c}×{h}×{w}");
            }
        }
    }

    #[test]
    fn output_sizes_match_pytorch() {
        assert_eq!(
            Geom::kernel(3, 3).stride(2).pad(1, 1).out_size(7, 8),
            (4, 4)
        );
        assert_eq!(
            Geom::kernel(3, 1).pad(16, 0).dilate(16, 1).out_size(32, 32),
            (32, 32)
        );
        assert_eq!(Geom::kernel(2, 2).stride(2).out_size(16, 10), (8, 5));
    }
}
