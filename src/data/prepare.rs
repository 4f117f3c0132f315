//! `esx prepare centers`: INSTANCE_CENTERS images beside each annotation's SEG
//! folder, rewritten only when the mask or the method changed (a manifest
//! in each INSTANCE_CENTERS folder records what each file was made from).
//! Stacks get centre stacks, their medoids measured in anisotropic
//! coordinates (z spacing over xy spacing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::centers::{center_image, centers};
use super::centers_3d::{center_volume, centers_3d};
use super::ctc::{discover, Frame};
use super::dims::{frame_dims, FrameDims};
use super::fingerprint::Fingerprint;
use super::tiff_io::{dimensions, read_labels, write_labels};
use super::tiff_stack::{read_label_stack, write_label_stack};
use super::DataError;
use crate::config::{Annotations, CenterMethod};
use crate::progress::Reporter;

const MANIFEST: &str = ".esx-centers.json";

#[derive(Clone, Debug, Default, Serialize)]
pub struct CentersReport {
    pub frames: usize,
    pub written: usize,
    pub current: usize,
    pub instances: usize,
    /// Centroids outside their instance (not marked).
    pub outside: usize,
    /// Frames whose mask has no instance (skipped).
    pub empty: usize,
    /// For stacks: the anisotropy the medoids were measured with, and
    /// where it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anisotropy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anisotropy_from: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Manifest {
    method: Option<CenterMethod>,
    /// Stacks' anisotropy (none for 2D frames).
    #[serde(default)]
    anisotropy: Option<f64>,
    /// mask file name → (mask fingerprint, centres-file fingerprint)
    files: BTreeMap<String, (Fingerprint, Fingerprint)>,
}

/// Every NN folder of a dataset.
pub fn all_sequences(root: &Path) -> Result<Vec<String>, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingDataset(root.to_path_buf()));
    }
    let mut seqs: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| DataError::io(root, e))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    seqs.sort();
    Ok(seqs)
}

/// `anisotropy` applies to stacks; without it the first image's metadata
/// gives it (ImageJ's spacing over the XResolution), else 1.
pub fn prepare_centers(
    root: &Path,
    sequences: &[String],
    annotations: Annotations,
    method: CenterMethod,
    anisotropy: Option<f64>,
    reporter: &Reporter,
) -> Result<CentersReport, DataError> {
    let frames = discover(root, sequences, annotations)?;
    let (anisotropy, anisotropy_from) = match frame_dims(&frames)? {
        FrameDims::Planar => (None, None),
        FrameDims::Stacks { first, spacing, .. } => {
            let (a, from) = match (anisotropy, spacing) {
                (Some(a), _) => (a, "given".to_string()),
                (None, Some(s)) => (
                    s.anisotropy(),
                    format!("{}'s voxel spacing", first.display()),
                ),
                (None, None) => (1.0, format!("{} says no voxel spacing", first.display())),
            };
            (Some(a), Some(from))
        }
    };
    let mut by_folder: BTreeMap<PathBuf, Vec<&Frame>> = BTreeMap::new();
    for f in &frames {
        let folder = f
            .centers(root)
            .parent()
            .expect("a centres folder")
            .to_path_buf();
        by_folder.entry(folder).or_default().push(f);
    }
    let mut report = CentersReport {
        frames: frames.len(),
        anisotropy,
        anisotropy_from,
        ..Default::default()
    };
    let bar = reporter.stage("centres", frames.len() as u64);
    for (folder, frames) in by_folder {
        let manifest_path = folder.join(MANIFEST);
        let mut manifest: Manifest = read_json(&manifest_path).unwrap_or_default();
        let name = |f: &Frame| {
            f.mask
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let stale: Vec<&Frame> = frames
            .iter()
            .copied()
            .filter(|f| {
                let current = manifest.method == Some(method)
                    && manifest.anisotropy == anisotropy
                    && manifest.files.get(&name(f)).is_some_and(|(mask, out)| {
                        Some(mask) == Fingerprint::of(&f.mask).as_ref()
                            && Some(out) == Fingerprint::of(&f.centers(root)).as_ref()
                    });
                if current {
                    bar.inc(1);
                }
                !current
            })
            .collect();
        report.current += frames.len() - stale.len();
        let results: Vec<Result<FrameCenters, DataError>> = stale
            .par_iter()
            .map(|f| {
                let r = match anisotropy {
                    None => frame_centers(root, f, method),
                    Some(a) => stack_centers(root, f, method, a),
                };
                bar.inc(1);
                r
            })
            .collect();
        if manifest.method != Some(method) || manifest.anisotropy != anisotropy {
            manifest.files.clear();
        }
        manifest.method = Some(method);
        manifest.anisotropy = anisotropy;
        for (frame, result) in stale.iter().zip(results) {
            let r = result?;
            if r.instances == 0 {
                reporter.warn(format!(
                    "{}: no instances in the mask; skipped",
                    frame.mask.display()
                ));
                report.empty += 1;
                manifest.files.remove(&name(frame));
                continue;
            }
            report.written += 1;
            report.instances += r.instances;
            report.outside += r.outside;
            let fps = (
                Fingerprint::of(&frame.mask),
                Fingerprint::of(&frame.centers(root)),
            );
            if let (Some(m), Some(c)) = fps {
                manifest.files.insert(name(frame), (m, c));
            }
        }
        write_json(&manifest_path, &manifest)?;
    }
    bar.finish_and_clear();
    if report.outside > 0 {
        reporter.warn(format!(
            "{} centroids fall outside their (non-convex) instance and are not marked; \
             the loss uses those instances' mean position",
            report.outside
        ));
    }
    Ok(report)
}

struct FrameCenters {
    instances: usize,
    outside: usize,
}

fn frame_centers(
    root: &Path,
    frame: &Frame,
    method: CenterMethod,
) -> Result<FrameCenters, DataError> {
    let labels = read_labels(&frame.mask)?;
    same_size(frame, labels.width, labels.height)?;
    let cs = centers(&labels, method);
    if cs.is_empty() {
        return Ok(FrameCenters {
            instances: 0,
            outside: 0,
        });
    }
    write_labels(
        &frame.centers(root),
        &center_image(labels.width, labels.height, &cs),
    )?;
    Ok(FrameCenters {
        instances: cs.len(),
        outside: cs.iter().filter(|c| !c.inside).count(),
    })
}

/// The frame's image is `width` × `height`, as its mask is.
fn same_size(frame: &Frame, width: usize, height: usize) -> Result<(), DataError> {
    let (iw, ih) = dimensions(&frame.image)?;
    if (iw, ih) != (width, height) {
        return Err(DataError::SizeMismatch {
            image: frame.image.clone(),
            mask: frame.mask.clone(),
            iw,
            ih,
            mw: width,
            mh: height,
        });
    }
    Ok(())
}

/// A stack's centres: the centre stack beside its mask.
fn stack_centers(
    root: &Path,
    frame: &Frame,
    method: CenterMethod,
    anisotropy: f64,
) -> Result<FrameCenters, DataError> {
    let labels = read_label_stack(&frame.mask)?;
    same_size(frame, labels.width, labels.height)?;
    let cs = centers_3d(&labels, anisotropy, method);
    if cs.is_empty() {
        return Ok(FrameCenters {
            instances: 0,
            outside: 0,
        });
    }
    let shape = (labels.depth, labels.height, labels.width);
    write_label_stack(&frame.centers(root), &center_volume(shape, &cs), None)?;
    Ok(FrameCenters {
        instances: cs.len(),
        outside: cs.iter().filter(|c| !c.inside).count(),
    })
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes JSON through a uniquely named temporary file and a rename, so that
/// readers never see half a file and concurrent writers (the runs of a sweep
/// starting together) never rename each other's temporary file away. A file
/// that already holds exactly this content is left untouched.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DataError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| DataError::Manifest {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    if std::fs::read(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    let mut tmp = crate::output::shared_temp_file(parent).map_err(|e| DataError::io(parent, e))?;
    std::io::Write::write_all(&mut tmp, &text).map_err(|e| DataError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| DataError::io(path, e.error))?;
    Ok(())
}
