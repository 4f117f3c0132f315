//! Synthetic 3D Cell Tracking Challenge datasets (Fluo-N3DH-like): nuclei in
//! ZYX stacks with gold-truth label stacks, deterministic for a seed.
//!
//! Nuclei are ellipsoids turned about z, radii 5–16 px in physical units
//! (xy pixels). The stacks are sampled `anisotropy` times more coarsely
//! along z than along y and x, as confocal and light-sheet stacks are, and
//! say so in their ImageJ metadata (spacing = anisotropy, XResolution 1).
//! Many nuclei come in groups touching along z, along y or along x, so a
//! model that does not learn z offsets cannot separate them. Touching nuclei
//! meet where their normalised radii are equal; shared borders are dimmer.
//! Rendering: bright nuclei, a Gaussian blur, Poisson and read noise
//! (uint16 stored as float32 stacks).

use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use serde::{Deserialize, Serialize};

use super::synth::{seg_path, write_dataset};
use super::tiff_stack::{write_label_stack, write_stack_f32};
use super::volume::{Spacing, Volume};
use super::DataError;
use crate::progress::Reporter;

/// Label stacks drop fragments smaller than this (voxels): nuclei cut by
/// the stack's faces or mostly hidden.
const MIN_VOXELS: usize = 30;

/// What `esx synth --3d` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Synth3dSpec {
    pub sequences: usize,
    pub frames: usize,
    /// Planes per stack.
    pub depth: usize,
    /// Height and width of each plane.
    pub size: usize,
    /// z spacing over xy spacing.
    pub anisotropy: f64,
    pub seed: u64,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct Marker {
    stacks: Synth3dSpec,
    version: u32,
}

/// Writes the dataset into `out` unless the same one is already there.
/// Returns whether anything was written.
pub fn synthesize_3d(
    out: &Path,
    spec: &Synth3dSpec,
    reporter: &Reporter,
) -> Result<bool, DataError> {
    let marker = Marker {
        stacks: spec.clone(),
        version: 1,
    };
    let spacing = Some(Spacing {
        z: spec.anisotropy,
        xy: 1.0,
    });
    let shape = (spec.sequences, spec.frames);
    write_dataset(out, &marker, shape, reporter, |s, t, seq, name| {
        let (image, labels) = synth_stack(spec, s, t);
        write_stack_f32(&out.join(seq).join(format!("t{name}.tif")), &image, spacing)?;
        write_label_stack(&seg_path(out, seq, name), &labels, spacing)
    })
}

/// One nucleus: an ellipsoid turned by `theta` about z, in physical
/// coordinates (z in xy pixels).
#[derive(Clone, Debug)]
struct Nucleus {
    centre: [f64; 3],
    radii: [f64; 3],
    theta: f64,
    brightness: f64,
}

impl Nucleus {
    fn random(rng: &mut ChaCha8Rng, centre: [f64; 3], max_r: f64) -> Nucleus {
        let r = (5f64.ln() + rng.random::<f64>() * (max_r.ln() - 5f64.ln())).exp();
        let mut axis = || (r * (0.8 + 0.4 * rng.random::<f64>())).max(4.0);
        let radii = [axis(), axis(), axis()];
        Nucleus {
            centre,
            radii,
            theta: rng.random::<f64>() * std::f64::consts::PI,
            brightness: 0.45 + 0.55 * rng.random::<f64>(),
        }
    }

    /// Distance from the centre over the boundary's: < 1 inside.
    fn rho(&self, p: [f64; 3]) -> f64 {
        let d = [
            p[0] - self.centre[0],
            p[1] - self.centre[1],
            p[2] - self.centre[2],
        ];
        let (s, c) = self.theta.sin_cos();
        let (u, v) = (c * d[1] + s * d[2], -s * d[1] + c * d[2]);
        ((d[0] / self.radii[0]).powi(2) + (u / self.radii[1]).powi(2) + (v / self.radii[2]).powi(2))
            .sqrt()
    }

    /// The half-width along an axis (0 z, 1 y, 2 x) of a box that holds it.
    fn reach(&self) -> f64 {
        self.radii.iter().cloned().fold(0.0, f64::max)
    }
}

/// Places nuclei: groups touching along z, y or x, and singles, mostly
/// apart between groups. `extent`: the stack's physical size (z, y, x).
fn place(rng: &mut ChaCha8Rng, extent: [f64; 3]) -> Vec<Nucleus> {
    let max_r = (extent[1] / 10.0).clamp(6.0, 16.0);
    let target = extent.iter().product::<f64>() * 0.22;
    let mut nuclei: Vec<Nucleus> = Vec::new();
    let mut volume = 0.0;
    for _ in 0..1500 {
        if volume >= target {
            break;
        }
        let n = if rng.random::<f64>() < 0.75 {
            2 + rng.random_range(0..2)
        } else {
            1
        };
        let axis = rng.random_range(0..3);
        let centre = [0, 1, 2].map(|k| rng.random::<f64>() * extent[k]);
        let mut group = vec![Nucleus::random(rng, centre, max_r)];
        for _ in 1..n {
            let prev = group.last().expect("a group has a first nucleus").clone();
            let mut next = Nucleus::random(rng, [0.0; 3], max_r);
            // Touch along the axis: the two semi-axes on it (the rotation
            // about z mixes y and x, so use their mean there), minus overlap.
            let along = |n: &Nucleus| {
                if axis == 0 {
                    n.radii[0]
                } else {
                    (n.radii[1] + n.radii[2]) / 2.0
                }
            };
            let gap = along(&prev) + along(&next) - 1.0 - rng.random::<f64>();
            next.centre = prev.centre;
            next.centre[axis] += gap;
            for k in (0..3).filter(|&k| k != axis) {
                next.centre[k] += (rng.random::<f64>() - 0.5) * 3.0;
            }
            group.push(next);
        }
        let clear = group.iter().all(|a| {
            nuclei.iter().all(|b| {
                let d: f64 = (0..3)
                    .map(|k| (a.centre[k] - b.centre[k]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let small = |n: &Nucleus| n.radii.iter().cloned().fold(f64::MAX, f64::min);
                d > 0.9 * (small(a) + small(b)) + 2.0
            })
        });
        if clear {
            for n in group {
                volume += 4.0 / 3.0 * std::f64::consts::PI * n.radii.iter().product::<f64>();
                nuclei.push(n);
            }
        }
    }
    nuclei
}

/// Labels (each voxel to the nucleus of smallest rho below 1) and rho.
fn rasterize(nuclei: &[Nucleus], shape: [usize; 3], anisotropy: f64) -> (Volume<u32>, Vec<f32>) {
    let [d, h, w] = shape;
    let mut labels = Volume::filled(d, h, w, 0u32);
    let mut best = vec![f32::INFINITY; d * h * w];
    for (i, n) in nuclei.iter().enumerate() {
        let r = n.reach();
        let span = |c: f64, scale: f64, len: usize| {
            let lo = ((c - r) / scale).floor().max(0.0) as usize;
            let hi = (((c + r) / scale).ceil().max(0.0) as usize + 1).min(len);
            lo..hi
        };
        for z in span(n.centre[0], anisotropy, d) {
            for y in span(n.centre[1], 1.0, h) {
                for x in span(n.centre[2], 1.0, w) {
                    let rho = n.rho([z as f64 * anisotropy, y as f64, x as f64]) as f32;
                    let at = (z * h + y) * w + x;
                    if rho < 1.0 && rho < best[at] {
                        best[at] = rho;
                        // Labels need not be contiguous in CTC data.
                        labels.data[at] = 2 * i as u32 + 1;
                    }
                }
            }
        }
    }
    (labels, best)
}

fn drop_fragments(labels: &mut Volume<u32>) {
    let mut counts = std::collections::HashMap::new();
    for &v in &labels.data {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    for v in &mut labels.data {
        if counts[v] < MIN_VOXELS {
            *v = 0;
        }
    }
}

/// Voxels next to another nucleus along any axis.
fn shared_border(labels: &Volume<u32>) -> Vec<bool> {
    let (d, h, w) = (labels.depth, labels.height, labels.width);
    let mut out = vec![false; labels.data.len()];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let v = labels.get(z, y, x);
                if v == 0 {
                    continue;
                }
                let other = |o: u32| o != 0 && o != v;
                let near = [
                    (z > 0).then(|| labels.get(z - 1, y, x)),
                    (z + 1 < d).then(|| labels.get(z + 1, y, x)),
                    (y > 0).then(|| labels.get(z, y - 1, x)),
                    (y + 1 < h).then(|| labels.get(z, y + 1, x)),
                    (x > 0).then(|| labels.get(z, y, x - 1)),
                    (x + 1 < w).then(|| labels.get(z, y, x + 1)),
                ];
                out[(z * h + y) * w + x] = near.into_iter().flatten().any(other);
            }
        }
    }
    out
}

/// A Gaussian blur along one axis (0 z, 1 y, 2 x), edges clamped.
fn blur_axis(v: &mut Volume<f32>, axis: usize, sigma: f64) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-r..=r)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let norm: f32 = kernel.iter().sum();
    let shape = [v.depth, v.height, v.width];
    let stride = [v.height * v.width, v.width, 1][axis];
    let len = shape[axis] as isize;
    let src = v.data.clone();
    for (i, out) in v.data.iter_mut().enumerate() {
        let pos = (i / stride) as isize % len;
        let base = i as isize - pos * stride as isize;
        let mut acc = 0.0;
        for (k, wk) in kernel.iter().enumerate() {
            let p = (pos + k as isize - r).clamp(0, len - 1);
            acc += wk * src[(base + p * stride as isize) as usize];
        }
        *out = acc / norm;
    }
}

/// Stack `t` of sequence `seq`: the image and its labels.
pub fn synth_stack(spec: &Synth3dSpec, seq: usize, t: usize) -> (Volume<f32>, Volume<u32>) {
    let shape = [spec.depth, spec.size, spec.size];
    let mut rng = super::batches::rng_for(spec.seed, seq as u64, t as u64);
    let extent = [
        spec.depth as f64 * spec.anisotropy,
        spec.size as f64,
        spec.size as f64,
    ];
    let nuclei = place(&mut rng, extent);
    let (mut labels, rho) = rasterize(&nuclei, shape, spec.anisotropy);
    drop_fragments(&mut labels);
    let border = shared_border(&labels);
    let mut f = Volume::filled(shape[0], shape[1], shape[2], 0.0f32);
    for (i, &id) in labels.data.iter().enumerate() {
        if id == 0 {
            continue;
        }
        let n = &nuclei[(id / 2) as usize];
        let mut v = n.brightness as f32 * (0.7 + 0.3 * (1.0 - rho[i] * rho[i]));
        if border[i] {
            v *= 0.45;
        }
        f.data[i] = v;
    }
    // The optics blur the same physical distance along every axis.
    blur_axis(&mut f, 0, 1.0 / spec.anisotropy);
    blur_axis(&mut f, 1, 1.0);
    blur_axis(&mut f, 2, 1.0);
    let read = Normal::new(0.0f32, 12.0).expect("a valid normal");
    for v in &mut f.data {
        let expected = 300.0 + 2600.0 * *v;
        let photons =
            Poisson::new(expected.max(1e-3) as f64).map_or(expected as f64, |p| p.sample(&mut rng));
        *v = (photons as f32 + read.sample(&mut rng))
            .clamp(0.0, 65535.0)
            .round();
    }
    (f, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ctc::discover;
    use crate::data::dims::{frame_dims, FrameDims};
    use crate::data::object_sizes::ObjectSizes;

    fn spec() -> Synth3dSpec {
        Synth3dSpec {
            sequences: 1,
            frames: 2,
            depth: 16,
            size: 64,
            anisotropy: 2.0,
            seed: 3,
        }
    }

    #[test]
    fn stacks_are_deterministic_and_differ_by_seed() {
        let (a, la) = synth_stack(&spec(), 1, 0);
        let (b, lb) = synth_stack(&spec(), 1, 0);
        assert_eq!((a.data, &la.data), (b.data, &lb.data));
        let other = Synth3dSpec { seed: 4, ..spec() };
        assert_ne!(synth_stack(&other, 1, 0).1.data, la.data);
        assert_eq!((la.depth, la.height, la.width), (16, 64, 64));
    }

    #[test]
    fn nuclei_touch_along_z_as_well_as_in_the_plane() {
        // Over a few stacks: voxels of two different nuclei adjacent along
        // z, along y and along x.
        let mut touch = [0usize; 3];
        for t in 0..4 {
            let (_, l) = synth_stack(&spec(), 1, t);
            for z in 0..l.depth {
                for y in 0..l.height {
                    for x in 0..l.width {
                        let v = l.get(z, y, x);
                        let differs = |o: u32| v != 0 && o != 0 && o != v;
                        touch[0] += usize::from(z + 1 < l.depth && differs(l.get(z + 1, y, x)));
                        touch[1] += usize::from(y + 1 < l.height && differs(l.get(z, y + 1, x)));
                        touch[2] += usize::from(x + 1 < l.width && differs(l.get(z, y, x + 1)));
                    }
                }
            }
        }
        assert!(touch.iter().all(|&n| n > 0), "{touch:?}");
    }

    #[test]
    fn the_dataset_reads_back_as_stacks_with_its_anisotropy() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("n3dh");
        assert!(synthesize_3d(&root, &spec(), &Reporter::silent()).unwrap());
        assert!(!synthesize_3d(&root, &spec(), &Reporter::silent()).unwrap());
        let frames = discover(&root, &["01".into()], crate::config::Annotations::Gt).unwrap();
        assert_eq!(frames.len(), 2);
        let FrameDims::Stacks {
            planes, spacing, ..
        } = frame_dims(&frames).unwrap()
        else {
            panic!("not stacks")
        };
        assert_eq!(planes, 16);
        assert_eq!(spacing.unwrap().anisotropy(), 2.0);
        let sizes =
            ObjectSizes::read(&root, &["01".into()], crate::config::Annotations::Gt).unwrap();
        assert!(sizes.is_3d() && sizes.objects > 4, "{sizes:?}");
        assert!(sizes.min_area >= MIN_VOXELS);
    }
}
