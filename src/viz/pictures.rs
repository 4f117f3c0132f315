//! What the network predicts, as pictures: the seed map, the clustering
//! radius from sigma, the offsets (as HSV and per axis on a symmetric
//! diverging scale), the embedded pixels, and the instances with the ground
//! truth's outlines; one composite panel with titles; colour overlays.

use image::{imageops, Rgb as Px, RgbImage};

use super::colour::{diverging, hsv, instance, viridis, Rgb};
use super::text::text;
use crate::data::Grid;
use crate::prediction::Prediction;

/// One validation sample and what the network made of it.
pub struct Sample<'a> {
    /// Normalised image (about 0..1).
    pub image: &'a Grid<f32>,
    pub prediction: &'a Prediction,
    /// Predicted instances.
    pub labels: &'a Grid<u32>,
    pub truth: Option<&'a Grid<u32>>,
    /// The ground-truth centres: the instance id at its centre pixel.
    pub centers: Option<&'a Grid<u32>>,
}

pub struct Picture {
    /// Stable name: `seed`, `sigma`, `offset_hsv`, `offset_x`, `offset_y`,
    /// `embedding`, `instances` (and `panel` for the composite).
    pub kind: &'static str,
    pub title: String,
    /// The map itself, one pixel per image pixel.
    pub map: RgbImage,
    pub legend: Option<Legend>,
}

/// A colour bar: the scale from bottom (t = 0) to top (t = 1) and its end labels.
pub struct Legend {
    pub scale: fn(f32) -> Rgb,
    pub top: String,
    pub bottom: String,
}

impl Picture {
    /// The map with its colour bar, if it has one.
    pub fn image(&self) -> RgbImage {
        match &self.legend {
            Some(l) => with_legend(&self.map, l),
            None => self.map.clone(),
        }
    }
}

fn diverging_bar(t: f32) -> Rgb {
    diverging(2.0 * t - 1.0)
}

/// The seven pictures of a sample, in panel order.
pub fn training_pictures(s: &Sample) -> Vec<Picture> {
    let p = s.prediction;
    let (w, h) = (p.width, p.height);
    let ox: Vec<f32> = (0..w * h).map(|i| p.ex[i] - (i % w) as f32).collect();
    let oy: Vec<f32> = (0..w * h).map(|i| p.ey[i] - (i / w) as f32).collect();
    let reach = ox.iter().chain(&oy).fold(1.0f32, |m, &v| m.max(v.abs()));
    let radius: Vec<f32> = (0..w * h)
        .map(|i| {
            let (sx, sy) = p.bandwidth(i);
            (std::f32::consts::LN_2 / ((sx + sy) / 2.0).max(1e-12)).sqrt()
        })
        .collect();
    let (rmin, rmax) = radius
        .iter()
        .fold((f32::INFINITY, 0f32), |(a, b), &r| (a.min(r), b.max(r)));
    let rspan = (rmax - rmin).max(1e-6);
    vec![
        Picture {
            kind: "seed",
            title: "seed".into(),
            map: map(w, h, |i| viridis(p.seed[i])),
            legend: Some(Legend {
                scale: viridis,
                top: "1".into(),
                bottom: "0".into(),
            }),
        },
        Picture {
            kind: "sigma",
            title: "cluster radius (px)".into(),
            map: map(w, h, |i| viridis((radius[i] - rmin) / rspan)),
            legend: Some(Legend {
                scale: viridis,
                top: format!("{rmax:.1}"),
                bottom: format!("{rmin:.1}"),
            }),
        },
        Picture {
            kind: "offset_hsv",
            title: "offset (hue: direction)".into(),
            map: map(w, h, |i| {
                let angle = oy[i].atan2(ox[i]) / std::f32::consts::TAU;
                hsv(angle, (ox[i].hypot(oy[i]) / reach).min(1.0), 1.0)
            }),
            legend: None,
        },
        signed("offset_x", "offset x (px)", w, h, &ox, reach),
        signed("offset_y", "offset y (px)", w, h, &oy, reach),
        Picture {
            kind: "embedding",
            title: "embedded pixels".into(),
            map: embedding(s),
            legend: None,
        },
        Picture {
            kind: "instances",
            title: format!("instances ({})", count_ids(s.labels)),
            map: instances(s),
            legend: None,
        },
    ]
}

fn map(w: usize, h: usize, f: impl Fn(usize) -> Rgb) -> RgbImage {
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        Px(f(y as usize * w + x as usize))
    })
}

fn signed(
    kind: &'static str,
    title: &str,
    w: usize,
    h: usize,
    values: &[f32],
    reach: f32,
) -> Picture {
    Picture {
        kind,
        title: title.into(),
        map: map(w, h, |i| diverging(values[i] / reach)),
        legend: Some(Legend {
            scale: diverging_bar,
            top: format!("+{reach:.1}"),
            bottom: format!("-{reach:.1}"),
        }),
    }
}

fn grey(v: f32, gain: f32) -> Rgb {
    let g = (v.clamp(0.0, 1.0) * 255.0 * gain) as u8;
    [g, g, g]
}

fn blend(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let m = |c: usize| (a[c] as f32 * (1.0 - t) + b[c] as f32 * t).round() as u8;
    [m(0), m(1), m(2)]
}

/// Each foreground pixel drawn where its embedding lands, coloured by its
/// ground-truth instance (predicted instance without truth); centres as crosses.
fn embedding(s: &Sample) -> RgbImage {
    let p = s.prediction;
    let (w, h) = (p.width, p.height);
    let mut img = map(w, h, |i| grey(s.image.data[i], 0.3));
    let ids = s.truth.unwrap_or(s.labels);
    for i in 0..w * h {
        let id = ids.data[i];
        if id == 0 {
            continue;
        }
        let (x, y) = (p.ex[i].round(), p.ey[i].round());
        if x >= 0.0 && y >= 0.0 && (x as usize) < w && (y as usize) < h {
            img.put_pixel(x as u32, y as u32, Px(instance(id)));
        }
    }
    for (x, y) in centres(s, ids) {
        for d in -3i64..=3 {
            for (cx, cy) in [(x + d, y), (x, y + d)] {
                if cx >= 0 && cy >= 0 && (cx as usize) < w && (cy as usize) < h {
                    img.put_pixel(cx as u32, cy as u32, Px([255, 255, 255]));
                }
            }
        }
    }
    img
}

/// Centre pixels from the centres grid, else each instance's centroid.
fn centres(s: &Sample, ids: &Grid<u32>) -> Vec<(i64, i64)> {
    let w = ids.width;
    if let Some(c) = s.centers {
        return (0..c.data.len())
            .filter(|&i| c.data[i] > 0)
            .map(|i| ((i % w) as i64, (i / w) as i64))
            .collect();
    }
    let mut sums: std::collections::BTreeMap<u32, (f64, f64, f64)> = Default::default();
    for (i, &id) in ids.data.iter().enumerate() {
        if id > 0 {
            let e = sums.entry(id).or_default();
            e.0 += (i % w) as f64;
            e.1 += (i / w) as f64;
            e.2 += 1.0;
        }
    }
    sums.values()
        .map(|&(x, y, n)| ((x / n).round() as i64, (y / n).round() as i64))
        .collect()
}

/// Predicted instances over the dimmed image, ground-truth outlines in white.
fn instances(s: &Sample) -> RgbImage {
    let (w, h) = (s.labels.width, s.labels.height);
    let mut img = map(w, h, |i| {
        let base = grey(s.image.data[i], 0.5);
        match s.labels.data[i] {
            0 => base,
            id => blend(base, instance(id), 0.7),
        }
    });
    if let Some(t) = s.truth {
        for i in outline(t) {
            img.put_pixel((i % w) as u32, (i / w) as u32, Px([255, 255, 255]));
        }
    }
    img
}

/// The predicted instances over the image, each filled lightly and outlined
/// in its colour (`esx predict --png`).
pub fn overlay(image: &Grid<f32>, labels: &Grid<u32>) -> RgbImage {
    let w = labels.width;
    let mut img = map(w, labels.height, |i| {
        let base = grey(image.data[i], 1.0);
        match labels.data[i] {
            0 => base,
            id => blend(base, instance(id), 0.35),
        }
    });
    for i in outline(labels) {
        img.put_pixel((i % w) as u32, (i / w) as u32, Px(instance(labels.data[i])));
    }
    img
}

/// Pixels of an instance with a 4-neighbour outside it.
fn outline(labels: &Grid<u32>) -> Vec<usize> {
    let (w, h) = (labels.width, labels.height);
    (0..w * h)
        .filter(|&i| {
            let id = labels.data[i];
            let (x, y) = (i % w, i / w);
            id > 0
                && (x == 0
                    || y == 0
                    || x + 1 == w
                    || y + 1 == h
                    || labels.data[i - 1] != id
                    || labels.data[i + 1] != id
                    || labels.data[i - w] != id
                    || labels.data[i + w] != id)
        })
        .collect()
}

fn count_ids(labels: &Grid<u32>) -> usize {
    let mut ids: Vec<u32> = labels.data.iter().copied().filter(|&v| v > 0).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

const LEGEND: u32 = 52;

/// The picture with a vertical colour bar on its right, labelled at both ends.
fn with_legend(img: &RgbImage, legend: &Legend) -> RgbImage {
    let (w, h) = img.dimensions();
    let h_out = h.max(64);
    let mut out = RgbImage::from_pixel(w + LEGEND, h_out, Px([255, 255, 255]));
    imageops::replace(&mut out, img, 0, 0);
    let scale = legend.scale;
    let (top_y, bottom_y) = (12, h_out - 12);
    for y in top_y..bottom_y {
        let t = 1.0 - (y - top_y) as f32 / (bottom_y - top_y - 1).max(1) as f32;
        for x in w + 4..w + 12 {
            out.put_pixel(x, y, Px(scale(t)));
        }
    }
    text(
        &mut out,
        &legend.top,
        (w as i32 + 14, top_y as i32 - 4),
        12.0,
        [0, 0, 0],
    );
    text(
        &mut out,
        &legend.bottom,
        (w as i32 + 14, bottom_y as i32 - 10),
        12.0,
        [0, 0, 0],
    );
    out
}

/// Scales (nearest neighbour) so the longer side is `side`.
fn fit(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let k = side as f32 / w.max(h) as f32;
    let (nw, nh) = (
        ((w as f32 * k).round() as u32).max(1),
        ((h as f32 * k).round() as u32).max(1),
    );
    imageops::resize(img, nw, nh, imageops::FilterType::Nearest)
}

/// The pictures in a grid of four columns, each under its title, with a heading.
pub fn panel(pictures: &[Picture], heading: &str) -> RgbImage {
    const TILE: u32 = 240;
    const TITLE: u32 = 22;
    const HEAD: u32 = 28;
    let cols = 4u32;
    let rows = (pictures.len() as u32).div_ceil(cols);
    let tiles: Vec<RgbImage> = pictures
        .iter()
        .map(|p| {
            let fitted = fit(&p.map, TILE);
            match &p.legend {
                Some(l) => with_legend(&fitted, l),
                None => fitted,
            }
        })
        .collect();
    let tile_w = TILE + LEGEND + 8;
    let tile_h = TILE + TITLE + 8;
    let mut out = RgbImage::from_pixel(cols * tile_w, HEAD + rows * tile_h, Px([255, 255, 255]));
    for (k, tile) in tiles.iter().enumerate() {
        let (c, r) = (k as u32 % cols, k as u32 / cols);
        imageops::replace(
            &mut out,
            tile,
            (c * tile_w + 4) as i64,
            (HEAD + r * tile_h + TITLE) as i64,
        );
    }
    text(&mut out, heading, (6, 4), 17.0, [0, 0, 0]);
    for (k, p) in pictures.iter().enumerate() {
        let (c, r) = (k as u32 % cols, k as u32 / cols);
        let at = ((c * tile_w + 4) as i32, (HEAD + r * tile_h + 2) as i32);
        text(&mut out, &p.title, at, 15.0, [30, 30, 30]);
    }
    out
}

pub fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding PNG into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two square cells; the prediction sends every pixel of a cell to its
    /// centre, so the embedding picture shows one dot per cell.
    fn sample() -> (Grid<f32>, Prediction, Grid<u32>) {
        let (w, h) = (32, 24);
        let mut truth = Grid::filled(w, h, 0u32);
        let mut p = Prediction::empty(w, h, 2);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let id = if (4..12).contains(&y) && (4..12).contains(&x) {
                    1
                } else if (12..20).contains(&y) && (18..28).contains(&x) {
                    2
                } else {
                    0
                };
                truth.data[i] = id;
                let (cx, cy) = match id {
                    1 => (8.0, 8.0),
                    2 => (23.0, 16.0),
                    _ => (x as f32, y as f32),
                };
                p.ex[i] = cx;
                p.ey[i] = cy;
                p.seed[i] = if id > 0 { 0.9 } else { 0.1 };
            }
        }
        let image = Grid::new(w, h, truth.data.iter().map(|&v| v as f32 * 0.4).collect());
        (image, p, truth)
    }

    #[test]
    fn pictures_show_offsets_per_axis_and_collapsed_embeddings() {
        let (image, p, truth) = sample();
        let s = Sample {
            image: &image,
            prediction: &p,
            labels: &truth,
            truth: Some(&truth),
            centers: None,
        };
        let pics = training_pictures(&s);
        let kinds: Vec<&str> = pics.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [
                "seed",
                "sigma",
                "offset_hsv",
                "offset_x",
                "offset_y",
                "embedding",
                "instances"
            ]
        );
        let get = |k: &str| &pics.iter().find(|p| p.kind == k).unwrap().map;
        // Left of cell 1's centre the x offset is positive (red), above it y is (red too);
        // to its right x is negative (blue). Background is zero (white).
        let ox = get("offset_x");
        assert!(ox.get_pixel(4, 8).0[0] > ox.get_pixel(4, 8).0[2]);
        assert!(ox.get_pixel(11, 8).0[2] > ox.get_pixel(11, 8).0[0]);
        assert_eq!(ox.get_pixel(0, 0).0, [247, 247, 247]);
        let oy = get("offset_y");
        assert!(oy.get_pixel(8, 4).0[0] > oy.get_pixel(8, 4).0[2]);
        assert_eq!(
            oy.get_pixel(4, 8).0,
            [247, 247, 247],
            "no y offset on the centre row"
        );
        // Embedded pixels: the cells collapse onto their centres.
        let e = get("embedding");
        assert_eq!(e.get_pixel(5, 5).0, grey(image.data[5 * 32 + 5], 0.3));
        assert_eq!(e.get_pixel(8, 8).0, [255, 255, 255], "centre cross");
        let panel = panel(&pics, "epoch 5");
        assert!(panel.width() >= 4 * 240 && panel.height() > 2 * 240);
        assert_eq!(
            pics[3].image().width(),
            32 + LEGEND,
            "offset x has its colour bar"
        );
        assert!(encode_png(&panel).starts_with(b"\x89PNG"));
    }

    #[test]
    fn overlay_outlines_each_instance_in_its_colour() {
        let (image, _, truth) = sample();
        let o = overlay(&image, &truth);
        assert_eq!(o.get_pixel(4, 4).0, instance(1));
        assert_eq!(o.get_pixel(27, 19).0, instance(2));
        assert_eq!(o.get_pixel(0, 0).0, [0, 0, 0]);
    }
}
