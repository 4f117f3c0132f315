//! Synthetic Cell Tracking Challenge datasets with gold-truth masks,
//! deterministic for a seed.
//!
//! Cells are ellipses with a few radial harmonics (irregular blobs), radius
//! 6–40 px, every orientation. Many are placed in vertical stacks and
//! horizontal rows of touching cells, so that a model which only learns x
//! offsets cannot separate them. Touching cells meet along the line where
//! their normalised radii are equal. Fluorescence ("fluo") renders bright
//! textured cells with dim shared borders on a sloped background, blurred,
//! with Poisson and read noise (uint16); DIC renders the relief of the cells'
//! height map as a directional derivative (uint8).

use std::path::{Path, PathBuf};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::tiff_io::{write_labels, write_raw, Pixels, RawImage};
use super::{DataError, Grid};
use crate::config::{SynthConfig, SynthKind};
use crate::progress::Reporter;

const MARKER: &str = ".esx-synth.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Marker {
    kind: SynthKind,
    sequences: usize,
    frames: usize,
    size: usize,
    seed: u64,
    version: u32,
}

/// Writes the dataset into `out` unless the same one is already there.
/// Returns whether anything was written.
pub fn synthesize(out: &Path, spec: &SynthConfig, reporter: &Reporter) -> Result<bool, DataError> {
    let marker = Marker {
        kind: spec.kind,
        sequences: spec.sequences,
        frames: spec.frames,
        size: spec.size,
        seed: spec.seed,
        version: 1,
    };
    write_dataset(
        out,
        &marker,
        (spec.sequences, spec.frames),
        reporter,
        |s, t, seq, name| {
            let (image, labels) = synth_frame(spec, s, t);
            write_raw(&out.join(seq).join(format!("t{name}.tif")), &image)?;
            write_labels(&seg_path(out, seq, name), &labels)
        },
    )
}

/// Writes every frame of a synthetic dataset, `write(s, t, "NN", "TTT")`
/// in parallel, then `marker`; nothing where the marker says this dataset
/// is already there. Returns whether anything was written.
pub(crate) fn write_dataset<M, W>(
    out: &Path,
    marker: &M,
    (sequences, frames): (usize, usize),
    reporter: &Reporter,
    write: W,
) -> Result<bool, DataError>
where
    M: Serialize + for<'de> Deserialize<'de> + PartialEq,
    W: Fn(usize, usize, &str, &str) -> Result<(), DataError> + Sync,
{
    let marker_path = out.join(MARKER);
    if super::prepare::read_json::<M>(&marker_path).as_ref() == Some(marker) {
        return Ok(false);
    }
    let digits = if frames > 1000 { 4 } else { 3 };
    let jobs: Vec<(usize, usize)> = (1..=sequences)
        .flat_map(|s| (0..frames).map(move |t| (s, t)))
        .collect();
    let bar = reporter.stage("synthesising", jobs.len() as u64);
    jobs.par_iter().try_for_each(|&(s, t)| {
        write(s, t, &format!("{s:02}"), &format!("{t:0digits$}"))?;
        bar.inc(1);
        Ok::<(), DataError>(())
    })?;
    bar.finish_and_clear();
    super::prepare::write_json(&marker_path, marker)?;
    Ok(true)
}

pub(crate) fn seg_path(out: &Path, seq: &str, name: &str) -> PathBuf {
    out.join(format!("{seq}_GT"))
        .join("SEG")
        .join(format!("man_seg{name}.tif"))
}

/// One cell: an ellipse with radial harmonics.
#[derive(Clone, Debug)]
struct Cell {
    cy: f64,
    cx: f64,
    a: f64,
    b: f64,
    theta: f64,
    harmonics: [(f64, f64); 3],
    brightness: f64,
}

impl Cell {
    fn random(rng: &mut ChaCha8Rng, cy: f64, cx: f64, max_r: f64) -> Cell {
        // Log-uniform radius in [6, max_r], then an aspect ratio up to 2.
        let r = (6f64.ln() + rng.random::<f64>() * (max_r.ln() - 6f64.ln())).exp();
        let aspect = 1.0 + rng.random::<f64>() * 0.9;
        let irregular = rng.random::<f64>() < 0.5;
        let mut harmonics = [(0.0, 0.0); 3];
        if irregular {
            for (k, h) in harmonics.iter_mut().enumerate() {
                *h = (
                    rng.random::<f64>() * 0.12 / (k as f64 + 1.0),
                    rng.random::<f64>() * std::f64::consts::TAU,
                );
            }
        }
        Cell {
            cy,
            cx,
            a: (r * aspect.sqrt()).max(6.0),
            b: (r / aspect.sqrt()).max(6.0),
            theta: rng.random::<f64>() * std::f64::consts::PI,
            harmonics,
            brightness: 0.45 + 0.55 * rng.random::<f64>(),
        }
    }

    /// The boundary radius in the direction of angle `phi` (image frame).
    fn radius(&self, phi: f64) -> f64 {
        let p = phi - self.theta;
        let (s, c) = p.sin_cos();
        let ellipse = self.a * self.b / ((self.b * c).powi(2) + (self.a * s).powi(2)).sqrt();
        let wobble: f64 = self
            .harmonics
            .iter()
            .enumerate()
            .map(|(k, (amp, ph))| amp * ((k as f64 + 2.0) * p + ph).cos())
            .sum();
        ellipse * (1.0 + wobble)
    }

    /// Distance from the centre over the boundary radius: < 1 inside.
    fn rho(&self, y: f64, x: f64) -> f64 {
        let (dy, dx) = (y - self.cy, x - self.cx);
        let d = (dy * dy + dx * dx).sqrt();
        if d == 0.0 {
            return 0.0;
        }
        d / self.radius(dy.atan2(dx))
    }

    fn extent(&self) -> f64 {
        self.a.max(self.b) * 1.4
    }
}

fn frame_rng(spec: &SynthConfig, seq: usize, t: usize) -> ChaCha8Rng {
    super::batches::rng_for(spec.seed, seq as u64, t as u64)
}

/// Places cells: vertical stacks, horizontal rows and singles, touching within
/// a group and mostly apart between groups.
fn place_cells(rng: &mut ChaCha8Rng, size: usize) -> Vec<Cell> {
    let s = size as f64;
    let max_r = (s / 10.0).clamp(8.0, 40.0);
    let target_area = s * s * 0.45;
    let mut cells: Vec<Cell> = Vec::new();
    let mut area = 0.0;
    let mut attempts = 0;
    while area < target_area && attempts < 1500 {
        attempts += 1;
        let kind = rng.random::<f64>();
        let n = if kind < 0.8 {
            2 + rng.random_range(0..3)
        } else {
            1
        };
        let vertical = kind < 0.45;
        let (cy, cx) = (rng.random::<f64>() * s, rng.random::<f64>() * s);
        let first = Cell::random(rng, cy, cx, max_r);
        let mut group = vec![first];
        for _ in 1..n {
            let prev = group.last().expect("a group has a first cell").clone();
            let mut next = Cell::random(rng, 0.0, 0.0, max_r);
            // Touch along the stacking axis: the sum of the two radii on it, minus an overlap.
            let (dir, jitter) = if vertical {
                (
                    std::f64::consts::FRAC_PI_2,
                    (rng.random::<f64>() - 0.5) * 4.0,
                )
            } else {
                (0.0, (rng.random::<f64>() - 0.5) * 4.0)
            };
            let gap = prev.radius(dir) + next.radius(dir + std::f64::consts::PI)
                - 1.0
                - rng.random::<f64>() * 2.0;
            if vertical {
                next.cy = prev.cy + gap;
                next.cx = prev.cx + jitter;
            } else {
                next.cx = prev.cx + gap;
                next.cy = prev.cy + jitter;
            }
            group.push(next);
        }
        let clear = group.iter().all(|c| {
            cells.iter().all(|o| {
                ((c.cy - o.cy).powi(2) + (c.cx - o.cx).powi(2)).sqrt()
                    > 0.85 * (c.a.min(c.b) + o.a.min(o.b)) + 2.0
            })
        });
        if !clear {
            continue;
        }
        for c in group {
            area += std::f64::consts::PI * c.a * c.b;
            cells.push(c);
        }
    }
    cells
}

/// Label map: each pixel goes to the cell with the smallest rho below 1.
fn rasterize(cells: &[Cell], size: usize) -> (Grid<u32>, Grid<f32>) {
    let mut labels = Grid::filled(size, size, 0u32);
    let mut best = Grid::filled(size, size, f32::INFINITY);
    for (i, c) in cells.iter().enumerate() {
        let e = c.extent();
        let (y0, y1) = (
            (c.cy - e).floor().max(0.0) as usize,
            ((c.cy + e).ceil() as usize).min(size),
        );
        let (x0, x1) = (
            (c.cx - e).floor().max(0.0) as usize,
            ((c.cx + e).ceil() as usize).min(size),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let rho = c.rho(y as f64, x as f64) as f32;
                if rho < 1.0 && rho < best.get(y, x) {
                    best.set(y, x, rho);
                    // Labels need not be contiguous in CTC data: leave gaps.
                    labels.set(y, x, 3 * i as u32 + 1);
                }
            }
        }
    }
    (labels, best)
}

/// Drops fragments too small to be a cell (mostly hidden or cut by the border).
fn drop_fragments(labels: &mut Grid<u32>, min_pixels: usize) {
    let mut counts = std::collections::HashMap::new();
    for &v in &labels.data {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    for v in &mut labels.data {
        if counts[v] < min_pixels {
            *v = 0;
        }
    }
}

/// Pixels on a border between two different cells.
fn shared_border(labels: &Grid<u32>) -> Grid<bool> {
    let (w, h) = (labels.width, labels.height);
    let mut out = Grid::filled(w, h, false);
    for y in 0..h {
        for x in 0..w {
            let v = labels.get(y, x);
            if v == 0 {
                continue;
            }
            let differs = |yy: usize, xx: usize| {
                let o = labels.get(yy, xx);
                o != 0 && o != v
            };
            if (y > 0 && differs(y - 1, x))
                || (y + 1 < h && differs(y + 1, x))
                || (x > 0 && differs(y, x - 1))
                || (x + 1 < w && differs(y, x + 1))
            {
                out.set(y, x, true);
            }
        }
    }
    out
}

/// A smooth random field in about [-1, 1]: bilinear upsampling of a coarse grid.
fn smooth_field(rng: &mut ChaCha8Rng, size: usize, cell: usize) -> Grid<f32> {
    let n = size / cell + 2;
    let coarse: Vec<f32> = (0..n * n)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let mut out = Grid::filled(size, size, 0.0f32);
    for y in 0..size {
        let fy = y as f32 / cell as f32;
        let (iy, ty) = (fy as usize, fy.fract());
        for x in 0..size {
            let fx = x as f32 / cell as f32;
            let (ix, tx) = (fx as usize, fx.fract());
            let at = |a: usize, b: usize| coarse[a * n + b];
            let top = at(iy, ix) * (1.0 - tx) + at(iy, ix + 1) * tx;
            let bottom = at(iy + 1, ix) * (1.0 - tx) + at(iy + 1, ix + 1) * tx;
            out.set(y, x, top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

/// Separable Gaussian blur with edge clamping.
fn blur(g: &Grid<f32>, sigma: f32) -> Grid<f32> {
    let r = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f32 = kernel.iter().sum();
    let (w, h) = (g.width as isize, g.height as isize);
    let pass = |src: &Grid<f32>, horizontal: bool| {
        let mut dst = Grid::filled(src.width, src.height, 0.0f32);
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (k, wk) in kernel.iter().enumerate() {
                    let o = k as isize - r;
                    let (yy, xx) = if horizontal {
                        (y, (x + o).clamp(0, w - 1))
                    } else {
                        ((y + o).clamp(0, h - 1), x)
                    };
                    acc += wk * src.get(yy as usize, xx as usize);
                }
                dst.set(y as usize, x as usize, acc / norm);
            }
        }
        dst
    };
    pass(&pass(g, true), false)
}

/// One frame of sequence `seq` at time `t`: the image and its instance labels.
pub fn synth_frame(spec: &SynthConfig, seq: usize, t: usize) -> (RawImage, Grid<u32>) {
    let size = spec.size;
    let mut rng = frame_rng(spec, seq, t);
    let cells = place_cells(&mut rng, size);
    let (mut labels, rho) = rasterize(&cells, size);
    drop_fragments(&mut labels, 20);
    let border = shared_border(&labels);
    let texture = smooth_field(&mut rng, size, 6);
    let slope = (
        rng.random::<f32>() * std::f32::consts::TAU,
        rng.random::<f32>(),
    );
    let background = |y: usize, x: usize| {
        let (s, c) = slope.0.sin_cos();
        slope.1 * ((x as f32 * c + y as f32 * s) / size as f32)
    };
    let brightness = |id: u32| cells[((id - 1) / 3) as usize].brightness as f32;
    let image = match spec.kind {
        SynthKind::Fluo => {
            let mut f = Grid::filled(size, size, 0.0f32);
            for i in 0..size * size {
                let id = labels.data[i];
                if id == 0 {
                    continue;
                }
                let r = rho.data[i];
                let mut v =
                    brightness(id) * (0.7 + 0.3 * (1.0 - r * r)) * (1.0 + 0.2 * texture.data[i]);
                if border.data[i] {
                    v *= 0.45;
                }
                f.data[i] = v;
            }
            let f = blur(&f, 1.1);
            let read = Normal::new(0.0f32, 12.0).expect("a valid normal");
            let data = (0..size * size)
                .map(|i| {
                    let (y, x) = (i / size, i % size);
                    let expected = 300.0 + 250.0 * background(y, x) + 2600.0 * f.data[i];
                    let photons = Poisson::new(expected.max(1e-3) as f64)
                        .map_or(expected as f64, |p| p.sample(&mut rng));
                    (photons as f32 + read.sample(&mut rng)).clamp(0.0, 65535.0) as u16
                })
                .collect();
            Pixels::U16(data)
        }
        SynthKind::Dic => {
            let mut height = Grid::filled(size, size, 0.0f32);
            for i in 0..size * size {
                let id = labels.data[i];
                if id == 0 {
                    continue;
                }
                let r = rho.data[i];
                let dome = (1.0 - r * r).max(0.0).sqrt() * (0.6 + 0.4 * brightness(id));
                height.data[i] =
                    dome * if border.data[i] { 0.35 } else { 1.0 } * (1.0 + 0.1 * texture.data[i]);
            }
            let height = blur(&height, 1.0);
            let noise = Normal::new(0.0f32, 4.0).expect("a valid normal");
            let data = (0..size * size)
                .map(|i| {
                    let (y, x) = (i / size, i % size);
                    let at = |yy: usize, xx: usize| height.get(yy.min(size - 1), xx.min(size - 1));
                    // Shear along the diagonal, as DIC's relief shading.
                    let dx = at(y, x + 1) - at(y, x.saturating_sub(1));
                    let dy = at(y + 1, x) - at(y.saturating_sub(1), x);
                    let v = 120.0
                        + 60.0 * background(y, x)
                        + 140.0 * (dx + dy)
                        + noise.sample(&mut rng);
                    v.clamp(0.0, 255.0) as u8
                })
                .collect();
            Pixels::U8(data)
        }
    };
    (
        RawImage {
            width: size,
            height: size,
            pixels: image,
        },
        labels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: SynthKind) -> SynthConfig {
        SynthConfig {
            kind,
            sequences: 1,
            frames: 1,
            size: 128,
            seed: 5,
        }
    }

    #[test]
    fn frames_are_deterministic_and_differ_by_seed() {
        let a = synth_frame(&spec(SynthKind::Fluo), 1, 0);
        assert_eq!(a, synth_frame(&spec(SynthKind::Fluo), 1, 0));
        let other = SynthConfig {
            seed: 6,
            ..spec(SynthKind::Fluo)
        };
        assert_ne!(a.1, synth_frame(&other, 1, 0).1);
    }

    #[test]
    fn cells_touch_along_both_axes() {
        let (_, labels) = synth_frame(&spec(SynthKind::Dic), 1, 3);
        let (mut vertical, mut horizontal) = (0, 0);
        for y in 0..labels.height - 1 {
            for x in 0..labels.width - 1 {
                let v = labels.get(y, x);
                if v == 0 {
                    continue;
                }
                let below = labels.get(y + 1, x);
                let right = labels.get(y, x + 1);
                vertical += usize::from(below != 0 && below != v);
                horizontal += usize::from(right != 0 && right != v);
            }
        }
        assert!(
            vertical > 20 && horizontal > 20,
            "vertical {vertical}, horizontal {horizontal}"
        );
        let ids: std::collections::BTreeSet<u32> =
            labels.data.iter().copied().filter(|&v| v > 0).collect();
        assert!(ids.len() >= 8, "{} cells", ids.len());
    }
}
