//! Winograd F(4, 3)'s tiles (see winograd.rs): where one image's tiles lie
//! and the transforms of one chunk of them: inputs (Bᵀ d), outputs (Aᵀ m,
//! with bias, residual and ReLU) and output gradients (A g), along columns
//! (3×1) or rows (1×3), compiled for AVX2+FMA where the CPU has them.

use crate::model::ops::elem::Around;
use crate::model::ops::elem::Elem;
use crate::model::ops::im2col::Geom;
use crate::model::ops::matmul::SendPtr;

/// Tiles per chunk: the chunk's transformed inputs and products stay in L2.
pub(super) const CHUNK_TILES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Axis {
    /// A 3×1 kernel: tiles run down the columns.
    Rows,
    /// A 1×3 kernel: tiles run along the rows.
    Cols,
}

/// Where one image's tiles lie.
pub(super) struct Tiling {
    pub(super) axis: Axis,
    pub(super) d: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    /// Tile starts along the axis: 4d·k + r, r < d, inside the image.
    pub(super) starts: Vec<usize>,
}

impl Tiling {
    pub(super) fn new(g: &Geom, h: usize, w: usize) -> Option<Tiling> {
        if g.sh != 1 || g.sw != 1 || h == 0 || w == 0 {
            return None;
        }
        let (axis, d, n) = match (g.kh, g.kw) {
            (3, 1) if g.ph == g.dh && g.pw == 0 => (Axis::Rows, g.dh, h),
            (1, 3) if g.pw == g.dw && g.ph == 0 => (Axis::Cols, g.dw, w),
            _ => return None,
        };
        let span = 4 * d;
        if d == 0 || n.div_ceil(span) * span * 4 > n * 5 {
            return None;
        }
        let starts = (0..n)
            .step_by(span)
            .flat_map(|b| (b..b + d).filter(move |&s| s < n))
            .collect();
        Some(Tiling {
            axis,
            d,
            h,
            w,
            starts,
        })
    }

    /// Lines of tiles (a chunk is whole lines): for 3×1 one per tile start
    /// (a row of tiles, one per column), for 1×3 one per image row.
    pub(super) fn lines(&self) -> usize {
        match self.axis {
            Axis::Rows => self.starts.len(),
            Axis::Cols => self.h,
        }
    }

    /// Lines per chunk: about CHUNK_TILES tiles.
    pub(super) fn lines_per_chunk(&self) -> usize {
        CHUNK_TILES.div_ceil(self.per_line()).max(1)
    }

    pub(super) fn per_line(&self) -> usize {
        match self.axis {
            Axis::Rows => self.w,
            Axis::Cols => self.starts.len(),
        }
    }
}

pub(super) fn cast<T: Elem>(v: f64) -> T {
    T::from(v).unwrap_or(T::zero())
}

/// u = Bᵀ d for six inputs.
#[inline(always)]
fn input_transform<T: Elem>(d: [T; 6]) -> [T; 6] {
    let (two, four, five) = (cast::<T>(2.0), cast::<T>(4.0), cast::<T>(5.0));
    [
        four * d[0] - five * d[2] + d[4],
        d[3] + d[4] - four * (d[1] + d[2]),
        four * (d[1] - d[2]) - d[3] + d[4],
        two * (d[3] - d[1]) - d[2] + d[4],
        two * (d[1] - d[3]) - d[2] + d[4],
        four * d[1] - five * d[3] + d[5],
    ]
}

/// y = Aᵀ m: the four outputs of a tile.
#[inline(always)]
fn output_transform<T: Elem>(m: [T; 6]) -> [T; 4] {
    let (two, four, eight) = (cast::<T>(2.0), cast::<T>(4.0), cast::<T>(8.0));
    let (s12, d12) = (m[1] + m[2], m[1] - m[2]);
    let (s34, d34) = (m[3] + m[4], m[3] - m[4]);
    [
        m[0] + s12 + s34,
        d12 + two * d34,
        s12 + four * s34,
        d12 + eight * d34 + m[5],
    ]
}

/// Six disjoint `len`-long slices of `u`, `stride` apart from `base`.
#[inline(always)]
fn six<T>(u: &mut [T], base: usize, stride: usize, len: usize) -> [&mut [T]; 6] {
    let (a, r) = u[base..].split_at_mut(stride);
    let (b, r) = r.split_at_mut(stride);
    let (c, r) = r.split_at_mut(stride);
    let (d, r) = r.split_at_mut(stride);
    let (e, f) = r.split_at_mut(stride);
    [
        &mut a[..len],
        &mut b[..len],
        &mut c[..len],
        &mut d[..len],
        &mut e[..len],
        &mut f[..len],
    ]
}

/// Runs `$body` compiled for AVX2 and FMA when the CPU has them (the
/// transforms are elementwise loops that the baseline's SSE2 runs at half
/// the width), else as the baseline.
macro_rules! with_avx2 {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA.
                return unsafe {
                    avx2(
                        #[inline(always)]
                        || $body,
                    )
                };
            }
        }
        $body
    }};
}

/// Bᵀ d of every tile of lines [l0, l1) of image `src` (ch × H·W), into
/// `u` (6 × ch × T), a line's tiles after the line before's.
pub(super) fn transform_inputs<T: Elem>(
    t: &Tiling,
    src: &[T],
    ch: usize,
    lines: (usize, usize),
    u: &mut [T],
) {
    match t.axis {
        Axis::Rows => with_avx2!(rows_inputs(t, src, ch, lines, u)),
        Axis::Cols => with_avx2!(cols_inputs(t, src, ch, lines, u)),
    }
}

#[inline(always)]
fn rows_inputs<T: Elem>(t: &Tiling, src: &[T], ch: usize, (l0, l1): (usize, usize), u: &mut [T]) {
    let (h, w, d) = (t.h, t.w, t.d);
    let p = h * w;
    let tiles = (l1 - l0) * w;
    let zeros = vec![T::zero(); w];
    for c in 0..ch {
        let plane = &src[c * p..(c + 1) * p];
        for (li, line) in (l0..l1).enumerate() {
            let y = t.starts[line] as isize;
            let row = |i: isize| {
                let r = y + (i - 1) * d as isize;
                if r < 0 || r >= h as isize {
                    &zeros[..w]
                } else {
                    &plane[r as usize * w..(r as usize + 1) * w]
                }
            };
            let s = [row(0), row(1), row(2), row(3), row(4), row(5)];
            let [u0, u1, u2, u3, u4, u5] = six(u, c * tiles + li * w, ch * tiles, w);
            for x in 0..w {
                let v = input_transform([s[0][x], s[1][x], s[2][x], s[3][x], s[4][x], s[5][x]]);
                (u0[x], u1[x], u2[x], u3[x], u4[x], u5[x]) = (v[0], v[1], v[2], v[3], v[4], v[5]);
            }
        }
    }
}

/// Along a row, tile k·d + r starts at 4d·k + r: the row is first split
/// into its four quarters of every block, Q_j[k·d + r] = row[4d·k + j·d + r],
/// so that each of the tiles' six inputs is one contiguous run:
/// Q_3 one block back, Q_0..Q_3, Q_0 one block on.
#[inline(always)]
fn cols_inputs<T: Elem>(t: &Tiling, src: &[T], ch: usize, (l0, l1): (usize, usize), u: &mut [T]) {
    let (h, w, d) = (t.h, t.w, t.d);
    let p = h * w;
    let per = t.per_line();
    let tiles = (l1 - l0) * per;
    let len = per + 2 * d;
    // Q_j at quarters[j·len + d + τ]; d zeros before and after each.
    let mut quarters = vec![T::zero(); 4 * len];
    let mut row = vec![T::zero(); w.div_ceil(4 * d) * 4 * d];
    for c in 0..ch {
        let plane = &src[c * p..(c + 1) * p];
        for (li, line) in (l0..l1).enumerate() {
            row[..w].copy_from_slice(&plane[line * w..(line + 1) * w]);
            split_quarters(&row, d, per, &mut quarters, len);
            let q = |j: usize, shift: usize| &quarters[j * len + shift..j * len + shift + per];
            let s = [q(3, 0), q(0, d), q(1, d), q(2, d), q(3, d), q(0, 2 * d)];
            let [u0, u1, u2, u3, u4, u5] = six(u, c * tiles + li * per, ch * tiles, per);
            for x in 0..per {
                let v = input_transform([s[0][x], s[1][x], s[2][x], s[3][x], s[4][x], s[5][x]]);
                (u0[x], u1[x], u2[x], u3[x], u4[x], u5[x]) = (v[0], v[1], v[2], v[3], v[4], v[5]);
            }
        }
    }
}

/// Q_j[d + k·d + r] = row[4d·k + j·d + r] for the `per` tiles k·d + r.
#[inline(always)]
fn split_quarters<T: Elem>(row: &[T], d: usize, per: usize, quarters: &mut [T], len: usize) {
    let (q0, rest) = quarters.split_at_mut(len);
    let (q1, rest) = rest.split_at_mut(len);
    let (q2, q3) = rest.split_at_mut(len);
    let qs = [
        &mut q0[d..d + per],
        &mut q1[d..d + per],
        &mut q2[d..d + per],
        &mut q3[d..d + per],
    ];
    let [q0, q1, q2, q3] = qs;
    if d == 1 {
        for (k, quad) in row.chunks_exact(4).enumerate().take(per) {
            (q0[k], q1[k], q2[k], q3[k]) = (quad[0], quad[1], quad[2], quad[3]);
        }
        return;
    }
    for (k, block) in row.chunks_exact(4 * d).enumerate() {
        let run = d.min(per - k * d);
        let at = k * d..k * d + run;
        q0[at.clone()].copy_from_slice(&block[..run]);
        q1[at.clone()].copy_from_slice(&block[d..d + run]);
        q2[at.clone()].copy_from_slice(&block[2 * d..2 * d + run]);
        q3[at].copy_from_slice(&block[3 * d..3 * d + run]);
    }
}

/// out (rows × H·W) at lines [l0, l1) = around(Aᵀ m) from `m` (6 × rows × T).
pub(super) fn transform_outputs<T: Elem>(
    t: &Tiling,
    m: &[T],
    rows: usize,
    lines: (usize, usize),
    out: &SendPtr<T>,
    around: &Around<T>,
) {
    match t.axis {
        Axis::Rows => with_avx2!(rows_outputs(t, m, rows, lines, out, around)),
        Axis::Cols => with_avx2!(cols_outputs(t, m, rows, lines, out, around)),
    }
}

/// Output row y of channel o.
///
/// # Safety
/// No other live slice may cover that row: lines are disjoint sets of output
/// rows (3×1: rows start + k·d; 1×3: one image row), each chunk holds whole
/// lines, and a chunk's rows are taken one at a time or as distinct rows.
#[inline(always)]
unsafe fn row_of<'a, T>(out: &SendPtr<T>, t: &Tiling, o: usize, y: usize) -> &'a mut [T] {
    std::slice::from_raw_parts_mut(out.0.add((o * t.h + y) * t.w), t.w)
}

#[inline(always)]
fn rows_outputs<T: Elem>(
    t: &Tiling,
    m: &[T],
    rows: usize,
    (l0, l1): (usize, usize),
    out: &SendPtr<T>,
    around: &Around<T>,
) {
    let (h, w, d) = (t.h, t.w, t.d);
    let p = h * w;
    let tiles = (l1 - l0) * w;
    // Rows past the image's bottom are written here and dropped.
    let mut spare = vec![T::zero(); 3 * w];
    for o in 0..rows {
        let bias = around.bias.map_or(T::zero(), |b| b[o]);
        for (li, line) in (l0..l1).enumerate() {
            let at = |i: usize| (i * rows + o) * tiles + li * w;
            let ms: [&[T]; 6] = std::array::from_fn(|i| &m[at(i)..at(i) + w]);
            let y0 = t.starts[line];
            let mut spares = spare.chunks_mut(w);
            // SAFETY: four distinct rows of this chunk's lines.
            let [r0, r1, r2, r3]: [&mut [T]; 4] = std::array::from_fn(|k| {
                let y = y0 + k * d;
                if y < h {
                    unsafe { row_of(out, t, o, y) }
                } else {
                    spares.next().expect("a spare row for each missing one")
                }
            });
            let (r0, r1, r2, r3) = (&mut r0[..w], &mut r1[..w], &mut r2[..w], &mut r3[..w]);
            for x in 0..w {
                let ys =
                    output_transform([ms[0][x], ms[1][x], ms[2][x], ms[3][x], ms[4][x], ms[5][x]]);
                (r0[x], r1[x], r2[x], r3[x]) =
                    (ys[0] + bias, ys[1] + bias, ys[2] + bias, ys[3] + bias);
            }
            for y in (y0..h).step_by(d).take(4) {
                // SAFETY: the rows above are no longer used.
                around.complete(o, unsafe { row_of(out, t, o, y) }, y * w, p);
            }
        }
    }
}

/// The tiles' four outputs as four contiguous quarters, then woven back
/// into the row (the inverse of `split_quarters`).
#[inline(always)]
fn cols_outputs<T: Elem>(
    t: &Tiling,
    m: &[T],
    rows: usize,
    (l0, l1): (usize, usize),
    out: &SendPtr<T>,
    around: &Around<T>,
) {
    let (h, w, d) = (t.h, t.w, t.d);
    let p = h * w;
    let per = t.per_line();
    let tiles = (l1 - l0) * per;
    let mut quarters = vec![T::zero(); 4 * per];
    let mut row = vec![T::zero(); w.div_ceil(4 * d) * 4 * d];
    for o in 0..rows {
        let bias = around.bias.map_or(T::zero(), |b| b[o]);
        for (li, line) in (l0..l1).enumerate() {
            let at = |i: usize| (i * rows + o) * tiles + li * per;
            let ms: [&[T]; 6] = std::array::from_fn(|i| &m[at(i)..at(i) + per]);
            {
                let (y0, rest) = quarters.split_at_mut(per);
                let (y1, rest) = rest.split_at_mut(per);
                let (y2, y3) = rest.split_at_mut(per);
                for x in 0..per {
                    let ys = output_transform([
                        ms[0][x], ms[1][x], ms[2][x], ms[3][x], ms[4][x], ms[5][x],
                    ]);
                    (y0[x], y1[x], y2[x], y3[x]) =
                        (ys[0] + bias, ys[1] + bias, ys[2] + bias, ys[3] + bias);
                }
            }
            let q = |j: usize| &quarters[j * per..(j + 1) * per];
            let (q0, q1, q2, q3) = (q(0), q(1), q(2), q(3));
            if d == 1 {
                for (k, quad) in row.chunks_exact_mut(4).enumerate().take(per) {
                    (quad[0], quad[1], quad[2], quad[3]) = (q0[k], q1[k], q2[k], q3[k]);
                }
            } else {
                for (k, block) in row.chunks_exact_mut(4 * d).enumerate() {
                    let run = d.min(per - k * d);
                    let at = k * d..k * d + run;
                    block[..run].copy_from_slice(&q0[at.clone()]);
                    block[d..d + run].copy_from_slice(&q1[at.clone()]);
                    block[2 * d..2 * d + run].copy_from_slice(&q2[at.clone()]);
                    block[3 * d..3 * d + run].copy_from_slice(&q3[at]);
                }
            }
            // SAFETY: one row of this chunk's lines at a time.
            let dst = unsafe { row_of(out, t, o, line) };
            dst.copy_from_slice(&row[..w]);
            around.complete(o, dst, line * w, p);
        }
    }
}

/// z = A g for a tile's four output gradients (the transpose of Aᵀ).
#[inline(always)]
fn grad_transform<T: Elem>(g: [T; 4]) -> [T; 6] {
    let (two, four, eight) = (cast::<T>(2.0), cast::<T>(4.0), cast::<T>(8.0));
    let (s02, s13) = (g[0] + g[2], g[1] + g[3]);
    let (e02, f13) = (g[0] + four * g[2], two * g[1] + eight * g[3]);
    [g[0], s02 + s13, s02 - s13, e02 + f13, e02 - f13, g[3]]
}

/// A g of every tile of lines [l0, l1) of the output gradient `grad`
/// (ch × H·W), into `z` (6 × ch × T), in the tiles' order of
/// `transform_inputs`; outputs past the image have no gradient.
pub(super) fn transform_grads<T: Elem>(
    t: &Tiling,
    grad: &[T],
    ch: usize,
    lines: (usize, usize),
    z: &mut [T],
) {
    with_avx2!(transform_grads_body(t, grad, ch, lines, z))
}

#[inline(always)]
fn transform_grads_body<T: Elem>(
    t: &Tiling,
    grad: &[T],
    ch: usize,
    (l0, l1): (usize, usize),
    z: &mut [T],
) {
    let (h, w, d) = (t.h, t.w, t.d);
    let p = h * w;
    let per = t.per_line();
    let tiles = (l1 - l0) * per;
    let zeros = vec![T::zero(); w];
    let len = per + 2 * d;
    let mut quarters = vec![T::zero(); 4 * len];
    let mut row = vec![T::zero(); w.div_ceil(4 * d) * 4 * d];
    for c in 0..ch {
        let plane = &grad[c * p..(c + 1) * p];
        for (li, line) in (l0..l1).enumerate() {
            let g: [&[T]; 4] = match t.axis {
                Axis::Rows => {
                    let y0 = t.starts[line];
                    std::array::from_fn(|k| {
                        let y = y0 + k * d;
                        if y < h {
                            &plane[y * w..(y + 1) * w]
                        } else {
                            &zeros[..w]
                        }
                    })
                }
                Axis::Cols => {
                    row[..w].copy_from_slice(&plane[line * w..(line + 1) * w]);
                    split_quarters(&row, d, per, &mut quarters, len);
                    std::array::from_fn(|j| &quarters[j * len + d..j * len + d + per])
                }
            };
            let [z0, z1, z2, z3, z4, z5] = six(z, c * tiles + li * per, ch * tiles, per);
            for x in 0..per {
                let v = grad_transform([g[0][x], g[1][x], g[2][x], g[3][x]]);
                (z0[x], z1[x], z2[x], z3[x], z4[x], z5[x]) = (v[0], v[1], v[2], v[3], v[4], v[5]);
            }
        }
    }
}
