//! Running the network on whole images of any size: reflect-pad to a multiple
//! of 8, forward in eval mode, crop back; optionally 8-fold test-time
//! augmentation; images larger than a tile are predicted in overlapping tiles
//! whose embeddings are put into image coordinates and stitched, so a cell
//! crossing a tile border is clustered as one.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::data::augment::Dihedral;
use crate::data::crops::reflect;
use crate::data::Grid;
use crate::model::{load_for_inference, BranchedErfnet, Mode, ModelError};
use crate::prediction::Prediction;

#[derive(Clone, Copy, Debug)]
pub struct PredictOptions {
    /// Average the 8 symmetries of the square (rotations × flip).
    pub tta: bool,
    /// Images larger than this (either side) are predicted in tiles of it.
    pub tile: usize,
    /// Tiles overlap by this many pixels; each pixel comes from the tile it is
    /// most inside of.
    pub overlap: usize,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            tta: false,
            tile: 1024,
            overlap: 128,
        }
    }
}

pub struct Predictor {
    net: BranchedErfnet,
    device: Device,
    pub n_sigma: usize,
}

impl Predictor {
    pub fn new(net: BranchedErfnet, device: Device) -> Predictor {
        let n_sigma = net.n_sigma();
        Predictor {
            net,
            device,
            n_sigma,
        }
    }

    /// From a checkpoint file (esx's or a converted EmbedSeg one).
    pub fn load(checkpoint: &Path, device: &Device) -> Result<Predictor, ModelError> {
        let (net, _) = load_for_inference(checkpoint, device)?;
        Ok(Predictor::new(net, device.clone()))
    }

    /// The decoded prediction for a normalised image.
    pub fn predict(
        &self,
        image: &Grid<f32>,
        options: &PredictOptions,
    ) -> candle_core::Result<Prediction> {
        let tta = options.tta;
        let mut one = self.tiled(image, options, |tile| {
            Ok(vec![if tta {
                mean(&self.dihedral_views(tile)?)
            } else {
                self.forward(tile)?
            }])
        })?;
        Ok(one.remove(0))
    }

    /// The 8 predictions of test-time augmentation, each mapped back into
    /// the image's frame, in `Dihedral::ALL`'s order (the first is the plain
    /// prediction); their mean is the TTA prediction.
    pub fn views(
        &self,
        image: &Grid<f32>,
        options: &PredictOptions,
    ) -> candle_core::Result<Vec<Prediction>> {
        self.tiled(image, options, |tile| self.dihedral_views(tile))
    }

    /// `per_tile`'s predictions for the whole image: at once where it fits a
    /// tile, else tile by tile, each output stitched from the tiles' cores.
    fn tiled(
        &self,
        image: &Grid<f32>,
        options: &PredictOptions,
        per_tile: impl Fn(&Grid<f32>) -> candle_core::Result<Vec<Prediction>>,
    ) -> candle_core::Result<Vec<Prediction>> {
        let (w, h) = (image.width, image.height);
        if w <= options.tile && h <= options.tile {
            return per_tile(image);
        }
        let mut outs: Vec<Prediction> = Vec::new();
        for (y0, cy0, cy1) in tiles(h, options.tile, options.overlap) {
            for (x0, cx0, cx1) in tiles(w, options.tile, options.overlap) {
                let (th, tw) = (options.tile.min(h), options.tile.min(w));
                let ps = per_tile(&image.window(y0, x0, th, tw))?;
                if outs.is_empty() {
                    outs = ps
                        .iter()
                        .map(|_| Prediction::empty(w, h, self.n_sigma))
                        .collect();
                }
                for (out, p) in outs.iter_mut().zip(&ps) {
                    for y in cy0..cy1 {
                        for x in cx0..cx1 {
                            let (i, k) = (y * w + x, (y - y0) * tw + (x - x0));
                            out.ex[i] = p.ex[k] + x0 as f32;
                            out.ey[i] = p.ey[k] + y0 as f32;
                            out.seed[i] = p.seed[k];
                            for (plane, src) in out.sigma.iter_mut().zip(&p.sigma) {
                                plane[i] = src[k];
                            }
                        }
                    }
                }
            }
        }
        Ok(outs)
    }

    /// The image under each of the 8 symmetries of the square, predicted and
    /// mapped back.
    fn dihedral_views(&self, image: &Grid<f32>) -> candle_core::Result<Vec<Prediction>> {
        let (w, h) = (image.width, image.height);
        let mut views = Vec::with_capacity(Dihedral::ALL.len());
        for d in Dihedral::ALL {
            let p = self.forward(&d.apply(image))?;
            let mut back = Prediction::empty(w, h, self.n_sigma);
            for k in 0..p.width * p.height {
                let (i, j) = (k / p.width, k % p.width);
                let (y, x) = d.source(i, j, h, w);
                let idx = y * w + x;
                // Embedded points map back like pixels: the map is affine.
                let (ey, ex) = d.source_point(p.ey[k] as f64, p.ex[k] as f64, h, w);
                back.ex[idx] = ex as f32;
                back.ey[idx] = ey as f32;
                back.seed[idx] = p.seed[k];
                let swap = d.swaps_axes() && self.n_sigma == 2;
                for (a, plane) in back.sigma.iter_mut().enumerate() {
                    let from = if swap { 1 - a } else { a };
                    plane[idx] = p.sigma[from][k];
                }
            }
            views.push(back);
        }
        Ok(views)
    }

    fn forward(&self, image: &Grid<f32>) -> candle_core::Result<Prediction> {
        let (w, h) = (image.width, image.height);
        let (pw, ph) = (w.div_ceil(8) * 8, h.div_ceil(8) * 8);
        let mut padded = Vec::with_capacity(pw * ph);
        for y in 0..ph {
            let sy = reflect(y as isize, h);
            for x in 0..pw {
                padded.push(image.get(sy, reflect(x as isize, w)));
            }
        }
        let x = Tensor::from_vec(padded, (1, 1, ph, pw), &self.device)?;
        let out = self.net.forward(&x, Mode::Eval)?.detach();
        let c = out.dim(1)?;
        let raw: Vec<f32> = out.flatten_all()?.to_vec1()?;
        let mut cropped = Vec::with_capacity(c * w * h);
        for ch in 0..c {
            for y in 0..h {
                let row = (ch * ph + y) * pw;
                cropped.extend_from_slice(&raw[row..row + w]);
            }
        }
        Ok(Prediction::from_output(&cropped, w, h, self.n_sigma))
    }
}

/// The mean of predictions of one image (the TTA prediction of its views).
pub fn mean(views: &[Prediction]) -> Prediction {
    let first = &views[0];
    let mut acc = Prediction::empty(first.width, first.height, first.sigma.len());
    let n = views.len() as f32;
    for v in views {
        for (a, b) in acc.ex.iter_mut().zip(&v.ex) {
            *a += b / n;
        }
        for (a, b) in acc.ey.iter_mut().zip(&v.ey) {
            *a += b / n;
        }
        for (a, b) in acc.seed.iter_mut().zip(&v.seed) {
            *a += b / n;
        }
        for (plane, src) in acc.sigma.iter_mut().zip(&v.sigma) {
            for (a, b) in plane.iter_mut().zip(src) {
                *a += b / n;
            }
        }
    }
    acc
}

/// Tiles along one axis of `size`: (start, core start, core end). Adjacent
/// tiles share the middle of their overlap as the border of their cores.
pub fn tiles(size: usize, tile: usize, overlap: usize) -> Vec<(usize, usize, usize)> {
    if size <= tile {
        return vec![(0, 0, size)];
    }
    let step = tile.saturating_sub(overlap).max(1);
    let mut starts: Vec<usize> = (0..)
        .map(|k| k * step)
        .take_while(|&s| s + tile < size)
        .collect();
    starts.push(size - tile);
    starts.dedup();
    let borders: Vec<usize> = starts
        .windows(2)
        .map(|s| (s[0] + tile + s[1]) / 2)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let lo = if k == 0 { 0 } else { borders[k - 1] };
            let hi = if k + 1 == starts.len() {
                size
            } else {
                borders[k]
            };
            (s, lo, hi)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_axis_once_with_cores_inside_their_tiles() {
        for (size, tile, overlap) in [
            (100, 100, 10),
            (1000, 256, 32),
            (300, 128, 64),
            (129, 128, 16),
        ] {
            let t = tiles(size, tile, overlap);
            assert_eq!(t[0].1, 0);
            assert_eq!(t.last().unwrap().2, size);
            for w in t.windows(2) {
                assert_eq!(w[0].2, w[1].1, "cores meet");
            }
            for &(s, lo, hi) in &t {
                assert!(
                    s <= lo && hi <= s + tile.min(size) && lo < hi,
                    "{size} {tile}: {t:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;
    use crate::model::Weights;

    pub(super) fn random_net() -> Predictor {
        let weights = Weights::new(candle_core::DType::F32, &Device::Cpu);
        BranchedErfnet::new(&weights, 2, 0).unwrap();
        // PyTorch's init everywhere, the output layers included, so that
        // offsets and sigma differ from pixel to pixel.
        weights.init_pytorch(7).unwrap();
        Predictor::new(
            BranchedErfnet::for_inference(&weights, 2).unwrap(),
            Device::Cpu,
        )
    }

    pub(super) fn image(w: usize, h: usize) -> Grid<f32> {
        Grid::new(
            w,
            h,
            (0..w * h)
                .map(|k| (((k % w) as f32 * 0.37).sin() + ((k / w) as f32 * 0.21).cos()).abs())
                .collect(),
        )
    }

    /// Averaging over the 8 symmetries makes prediction equivariant: turning
    /// the image turns the embeddings, exactly, if TTA maps them back right.
    #[test]
    fn tta_is_equivariant_under_the_symmetries_of_the_square() {
        let p = random_net();
        let img = image(40, 24);
        let tta = PredictOptions {
            tta: true,
            ..Default::default()
        };
        let base = p.predict(&img, &tta).unwrap();
        for d in Dihedral::ALL {
            let turned = p.predict(&d.apply(&img), &tta).unwrap();
            let (h, w) = (img.height, img.width);
            let mut worst = 0f32;
            for k in 0..turned.width * turned.height {
                let (i, j) = (k / turned.width, k % turned.width);
                let (y, x) = d.source(i, j, h, w);
                let s = y * w + x;
                let (ey, ex) = d.source_point(turned.ey[k] as f64, turned.ex[k] as f64, h, w);
                worst = worst
                    .max((ex as f32 - base.ex[s]).abs())
                    .max((ey as f32 - base.ey[s]).abs())
                    .max((turned.seed[k] - base.seed[s]).abs());
                let swap = d.swaps_axes();
                worst = worst
                    .max((turned.sigma[usize::from(swap)][k] - base.sigma[0][s]).abs())
                    .max((turned.sigma[usize::from(!swap)][k] - base.sigma[1][s]).abs());
            }
            assert!(worst < 1e-3, "{d:?}: differs by {worst}");
        }
        // And it is not trivially so: without TTA a turn changes the output.
        let plain = p.predict(&img, &PredictOptions::default()).unwrap();
        let turned = p
            .predict(&Dihedral::ALL[1].apply(&img), &PredictOptions::default())
            .unwrap();
        let (y, x) = Dihedral::ALL[1].source(3, 5, 24, 40);
        let k = 3 * turned.width + 5;
        let (_, ex) =
            Dihedral::ALL[1].source_point(turned.ey[k] as f64, turned.ex[k] as f64, 24, 40);
        assert!((ex as f32 - plain.ex[y * 40 + x]).abs() > 1e-3);
    }

    /// Each pixel of a tiled prediction is its tile's prediction, shifted
    /// into image coordinates.
    #[test]
    fn tiled_prediction_stitches_tiles_into_image_coordinates() {
        let p = random_net();
        let img = image(96, 72);
        let opts = PredictOptions {
            tile: 48,
            overlap: 16,
            ..Default::default()
        };
        let tiled = p.predict(&img, &opts).unwrap();
        let mut checked = 0;
        for (y0, cy0, cy1) in tiles(72, 48, 16) {
            for (x0, cx0, cx1) in tiles(96, 48, 16) {
                let win = p.predict(&img.window(y0, x0, 48, 48), &opts).unwrap();
                for y in cy0..cy1 {
                    for x in cx0..cx1 {
                        let (k, t) = (y * 96 + x, (y - y0) * 48 + (x - x0));
                        assert!((tiled.ex[k] - (win.ex[t] + x0 as f32)).abs() < 1e-3);
                        assert!((tiled.ey[k] - (win.ey[t] + y0 as f32)).abs() < 1e-3);
                        assert_eq!(tiled.seed[k], win.seed[t]);
                        assert_eq!(tiled.sigma[1][k], win.sigma[1][t]);
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 96 * 72);
        // Tiling changes the context, so the stitched result is not the
        // whole-image pass; what matters is that nothing is left unset.
        assert!(tiled.seed.iter().all(|&s| s > 0.0));
    }
}

#[cfg(test)]
mod view_tests {
    use super::model_tests::{image, random_net};
    use super::*;

    /// The views are what TTA averages: the first is the plain prediction,
    /// their mean the TTA one, whole or tiled; and they are 8 different
    /// predictions (a view that equals another would hide a wrong map).
    #[test]
    fn views_are_the_plain_prediction_first_and_average_to_tta() {
        let p = random_net();
        for (img, tile) in [(image(40, 24), 1024), (image(96, 72), 48)] {
            let plain_opts = PredictOptions {
                tile,
                overlap: 16,
                ..Default::default()
            };
            let tta_opts = PredictOptions {
                tta: true,
                ..plain_opts
            };
            let views = p.views(&img, &plain_opts).unwrap();
            assert_eq!(views.len(), 8);
            let plain = p.predict(&img, &plain_opts).unwrap();
            assert_eq!(views[0].ex, plain.ex);
            assert_eq!(views[0].sigma, plain.sigma);
            let tta = p.predict(&img, &tta_opts).unwrap();
            let avg = mean(&views);
            let worst = avg
                .ex
                .iter()
                .zip(&tta.ex)
                .chain(avg.ey.iter().zip(&tta.ey))
                .chain(avg.seed.iter().zip(&tta.seed))
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst < 1e-3,
                "tile {tile}: mean of views differs by {worst}"
            );
            for a in 0..8 {
                for b in a + 1..8 {
                    assert_ne!(views[a].ex, views[b].ex, "views {a} and {b}");
                }
            }
        }
    }
}
