//! `esx prepare crops`: one crop per instance, centred on its centre, in the
//! seed's layout:
//!
//! ```text
//! DATASET/TRAIN_CROPS_256x256/NN/tNNN_ID.tif                    image (float32, normalised)
//! DATASET/TRAIN_CROPS_256x256/NN_SEG/man_segNNN_ID.tif          instance labels (uint16)
//! DATASET/TRAIN_CROPS_256x256/NN_INSTANCE_CENTERS/man_segNNN_ID.tif  centres (uint16)
//! ```
//! Near borders the window shifts to stay inside the image; an image smaller
//! than the crop is padded (reflect for the image, 0 for labels and centres).
//! A manifest records what every frame's crops were made from, so only stale
//! frames are redone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::centers::instance_pixels;
use super::ctc::{discover, Annotation, Frame};
use super::fingerprint::Fingerprint;
use super::normalize::normalize;
use super::prepare::{prepare_centers, read_json, write_json};
use super::tiff_io::{read_image, read_labels, write_f32, write_labels};
use super::{DataError, Grid};
use crate::config::{Annotations, CenterMethod, Normalization};
use crate::progress::Reporter;

const MANIFEST: &str = "manifest.json";

/// What crops are made with; any change makes every crop stale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropSpec {
    pub crop_size: usize,
    pub center: CenterMethod,
    pub annotations: Annotations,
    pub normalization: Normalization,
    pub pmin: f64,
    pub pmax: f64,
    /// Pad images smaller than the crop; when off such frames are skipped.
    pub pad: bool,
}

impl CropSpec {
    /// With the crop size resolved (a config's may be "auto").
    pub fn from_config(data: &crate::config::DataConfig, crop_size: usize) -> CropSpec {
        CropSpec {
            crop_size,
            center: data.center,
            annotations: data.annotations,
            normalization: data.normalization,
            pmin: data.pmin,
            pmax: data.pmax,
            pad: true,
        }
    }
}

/// One crop on disk. The manifest holds paths relative to the crops folder;
/// `load_crop_list` gives them joined to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropItem {
    /// `01/t003`: crops of one frame share it (splits are by frame).
    pub frame: String,
    pub id: u32,
    pub image: PathBuf,
    pub labels: PathBuf,
    pub centers: PathBuf,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FrameEntry {
    annotation: Option<Annotation>,
    image: Option<Fingerprint>,
    mask: Option<Fingerprint>,
    centers: Option<Fingerprint>,
    crops: Vec<CropItem>,
    /// Each crop's files' sizes (image, labels, centres) as written: a
    /// truncated crop makes its frame stale. Absent in older manifests.
    #[serde(default)]
    crop_sizes: Vec<[u64; 3]>,
}

/// The sizes of a crop's three files now (0 for a missing one).
fn crop_file_sizes(dir: &Path, c: &CropItem) -> [u64; 3] {
    let len = |p: &PathBuf| std::fs::metadata(dir.join(p)).map_or(0, |m| m.len());
    [len(&c.image), len(&c.labels), len(&c.centers)]
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Manifest {
    spec: Option<CropSpec>,
    frames: BTreeMap<String, FrameEntry>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CropsReport {
    pub dir: PathBuf,
    pub frames: usize,
    pub written_frames: usize,
    pub current_frames: usize,
    pub crops: usize,
    pub skipped_frames: usize,
}

pub fn crops_dir(root: &Path, crop_size: usize) -> PathBuf {
    root.join(format!("TRAIN_CROPS_{crop_size}x{crop_size}"))
}

/// Makes the centres and crops current; returns what was done.
pub fn prepare_crops(
    root: &Path,
    sequences: &[String],
    spec: &CropSpec,
    reporter: &Reporter,
) -> Result<CropsReport, DataError> {
    prepare_centers(
        root,
        sequences,
        spec.annotations,
        spec.center,
        None,
        reporter,
    )?;
    let frames = discover(root, sequences, spec.annotations)?;
    let dir = crops_dir(root, spec.crop_size);
    let manifest_path = dir.join(MANIFEST);
    let mut manifest: Manifest = read_json(&manifest_path).unwrap_or_default();
    if manifest.spec.as_ref() != Some(spec) {
        for entry in manifest.frames.values() {
            remove_crops(&dir, &entry.crops);
        }
        manifest = Manifest {
            spec: Some(spec.clone()),
            frames: BTreeMap::new(),
        };
    }
    // Frames gone from the dataset lose their crops.
    let keys: std::collections::BTreeSet<String> = frames.iter().map(Frame::key).collect();
    manifest.frames.retain(|k, entry| {
        let keep = keys.contains(k);
        if !keep {
            remove_crops(&dir, &entry.crops);
        }
        keep
    });

    let fingerprints = |f: &Frame| FrameEntry {
        annotation: Some(f.annotation),
        image: Fingerprint::of(&f.image),
        mask: Fingerprint::of(&f.mask),
        centers: Fingerprint::of(&f.centers(root)),
        crops: Vec::new(),
        crop_sizes: Vec::new(),
    };
    let stale: Vec<&Frame> = frames
        .iter()
        .filter(|f| {
            let now = fingerprints(f);
            !manifest.frames.get(&f.key()).is_some_and(|e| {
                e.annotation == now.annotation
                    && e.image == now.image
                    && e.mask == now.mask
                    && e.centers == now.centers
                    && e.crop_sizes.len() == e.crops.len()
                    && e.crops
                        .iter()
                        .zip(&e.crop_sizes)
                        .all(|(c, sizes)| crop_file_sizes(&dir, c) == *sizes)
            })
        })
        .collect();
    // Before anything is written: the crop size against the frames, the
    // crops against the free disk, the cropping against the memory.
    super::budget::check_crops(&frames, &stale, spec.crop_size, &dir)?;
    let mut report = CropsReport {
        dir: dir.clone(),
        frames: frames.len(),
        current_frames: frames.len() - stale.len(),
        ..Default::default()
    };
    let bar = reporter.stage("crops", stale.len() as u64);
    let results: Vec<Result<Option<Vec<CropItem>>, DataError>> = stale
        .par_iter()
        .map(|f| {
            let r = crop_frame(root, &dir, f, spec);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut largest = (0, 0);
    let mut skipped = Vec::new();
    for (frame, result) in stale.iter().zip(results) {
        let old = manifest.frames.remove(&frame.key());
        let made = match result {
            Ok(made) => made,
            Err(DataError::CropTooLarge { w, h, .. }) => {
                largest = largest.max((w, h));
                skipped.push(format!(
                    "{}: {w}×{h} is smaller than the {} crop and padding is off; skipped",
                    frame.image.display(),
                    spec.crop_size
                ));
                report.skipped_frames += 1;
                None
            }
            Err(e) => return Err(e),
        };
        let crops = match made {
            Some(crops) => crops,
            None => {
                if let Some(old) = old {
                    remove_crops(&dir, &old.crops);
                }
                continue;
            }
        };
        if let Some(old) = old {
            let kept: Vec<CropItem> = old
                .crops
                .into_iter()
                .filter(|c| !crops.contains(c))
                .collect();
            remove_crops(&dir, &kept);
        }
        report.written_frames += 1;
        let mut entry = fingerprints(frame);
        entry.crop_sizes = crops.iter().map(|c| crop_file_sizes(&dir, c)).collect();
        entry.crops = crops;
        manifest.frames.insert(frame.key(), entry);
    }
    report.crops = manifest.frames.values().map(|e| e.crops.len()).sum();
    write_json(&manifest_path, &manifest)?;
    if report.crops > 0 {
        skipped.into_iter().for_each(|w| reporter.warn(w));
    } else {
        if report.skipped_frames > 0 && report.skipped_frames == report.frames {
            return Err(DataError::CropTooLarge {
                crop: spec.crop_size,
                w: largest.0,
                h: largest.1,
            });
        }
        return Err(DataError::NoCrops {
            path: dir,
            why: "no annotated frame has an instance".into(),
        });
    }
    Ok(report)
}

/// The crops of a prepared directory, in manifest order (frame, then id).
pub fn load_crop_list(dir: &Path) -> Result<Vec<CropItem>, DataError> {
    let path = dir.join(MANIFEST);
    let manifest: Manifest = read_json(&path).ok_or_else(|| DataError::Manifest {
        path: path.clone(),
        why: "missing or unreadable; run `esx prepare crops`".into(),
    })?;
    Ok(manifest
        .frames
        .into_values()
        .flat_map(|e| e.crops)
        .map(|c| CropItem {
            image: dir.join(&c.image),
            labels: dir.join(&c.labels),
            centers: dir.join(&c.centers),
            ..c
        })
        .collect())
}

fn remove_crops(dir: &Path, crops: &[CropItem]) {
    for c in crops {
        for p in [&c.image, &c.labels, &c.centers] {
            let _ = std::fs::remove_file(dir.join(p));
        }
    }
}

/// Crops one frame; None for an empty mask (warned about by the centres step).
fn crop_frame(
    root: &Path,
    dir: &Path,
    frame: &Frame,
    spec: &CropSpec,
) -> Result<Option<Vec<CropItem>>, DataError> {
    let labels = read_labels(&frame.mask)?;
    let raw = read_image(&frame.image)?;
    if (raw.width, raw.height) != (labels.width, labels.height) {
        return Err(DataError::SizeMismatch {
            image: frame.image.clone(),
            mask: frame.mask.clone(),
            iw: raw.width,
            ih: raw.height,
            mw: labels.width,
            mh: labels.height,
        });
    }
    let s = spec.crop_size;
    if !spec.pad && (raw.width < s || raw.height < s) {
        return Err(DataError::CropTooLarge {
            crop: s,
            w: raw.width,
            h: raw.height,
        });
    }
    let centers_path = frame.centers(root);
    if !centers_path.is_file() {
        return Ok(None);
    }
    let centers = read_labels(&centers_path)?;
    // Non-finite pixels were refused when the image was read.
    let mut image = raw.to_f32();
    normalize(&mut image, spec.normalization, spec.pmin, spec.pmax);
    let (image, labels, centers) = pad_to(image, labels, centers, s);

    let mut center_of: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for (i, &id) in centers.data.iter().enumerate() {
        if id != 0 {
            center_of.insert(id, (i / centers.width, i % centers.width));
        }
    }
    let seq = &frame.sequence;
    let mut out = Vec::new();
    for (id, pixels) in instance_pixels(&labels) {
        // Instances without a marked centre (an outside centroid) use their box's middle.
        let (cy, cx) = center_of.get(&id).copied().unwrap_or_else(|| {
            let (y0, y1) = pixels
                .iter()
                .fold((u32::MAX, 0), |(a, b), p| (a.min(p.0), b.max(p.0)));
            let (x0, x1) = pixels
                .iter()
                .fold((u32::MAX, 0), |(a, b), p| (a.min(p.1), b.max(p.1)));
            (((y0 + y1) / 2) as usize, ((x0 + x1) / 2) as usize)
        });
        let y0 = cy.saturating_sub(s / 2).min(labels.height - s);
        let x0 = cx.saturating_sub(s / 2).min(labels.width - s);
        let item = CropItem {
            frame: frame.key(),
            id,
            image: PathBuf::from(seq).join(format!("t{}_{id}.tif", frame.time)),
            labels: PathBuf::from(format!("{seq}_SEG"))
                .join(format!("man_seg{}_{id}.tif", frame.time)),
            centers: PathBuf::from(format!("{seq}_INSTANCE_CENTERS"))
                .join(format!("man_seg{}_{id}.tif", frame.time)),
        };
        write_f32(&dir.join(&item.image), &image.window(y0, x0, s, s))?;
        write_labels(&dir.join(&item.labels), &labels.window(y0, x0, s, s))?;
        write_labels(&dir.join(&item.centers), &centers.window(y0, x0, s, s))?;
        out.push(item);
    }
    Ok(Some(out))
}

type Padded = (Grid<f32>, Grid<u32>, Grid<u32>);

/// Pads every axis shorter than `s` evenly on both sides: the image by
/// reflection (numpy's "reflect"), labels and centres with 0.
fn pad_to(image: Grid<f32>, labels: Grid<u32>, centers: Grid<u32>, s: usize) -> Padded {
    let (w, h) = (image.width, image.height);
    if w >= s && h >= s {
        return (image, labels, centers);
    }
    let (nw, nh) = (w.max(s), h.max(s));
    let (top, left) = ((nh - h) / 2, (nw - w) / 2);
    let mut pi = Grid::filled(nw, nh, 0.0f32);
    let mut pl = Grid::filled(nw, nh, 0u32);
    let mut pc = Grid::filled(nw, nh, 0u32);
    for y in 0..nh {
        let sy = reflect(y as isize - top as isize, h);
        for x in 0..nw {
            let sx = reflect(x as isize - left as isize, w);
            pi.set(y, x, image.get(sy, sx));
            let inside = (top..top + h).contains(&y) && (left..left + w).contains(&x);
            if inside {
                pl.set(y, x, labels.get(y - top, x - left));
                pc.set(y, x, centers.get(y - top, x - left));
            }
        }
    }
    (pi, pl, pc)
}

/// numpy's "reflect" index: mirror at the edges without repeating them.
pub(crate) fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad(np.arange(4), 5, mode="reflect") = [1 2 3 2 1 | 0 1 2 3 | 2 1 0 1 2]
        let got: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
    }

    #[test]
    fn padding_centres_a_small_image() {
        let img = Grid::new(2, 2, vec![1.0, 2.0, 3.0, 4.0]);
        let lab = Grid::new(2, 2, vec![0, 5, 5, 0]);
        let (pi, pl, _) = pad_to(img, lab.clone(), lab, 4);
        assert_eq!(
            pl.data,
            vec![0, 0, 0, 0, 0, 0, 5, 0, 0, 5, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(pi.get(0, 0), 4.0, "reflected, not zero");
    }
}
