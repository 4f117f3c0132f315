//! The Cell Tracking Challenge layout:
//!
//! ```text
//! DATASET/NN/tNNN.tif                 images (3 or 4 digits)
//! DATASET/NN_GT/SEG/man_segNNN.tif    gold-truth instance masks (often a subset of frames)
//! DATASET/NN_ST/SEG/man_segNNN.tif    silver-truth masks
//! ```
//! A training frame is an image that has a mask of the chosen annotation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::DataError;
use crate::config::Annotations;

/// Which annotation a frame's mask comes from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Annotation {
    GT,
    ST,
}

impl Annotation {
    pub fn folder(self) -> &'static str {
        match self {
            Annotation::GT => "GT",
            Annotation::ST => "ST",
        }
    }
}

/// One annotated frame.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame {
    pub sequence: String,
    /// The frame's digits as written in the mask name (`001`, `0001`).
    pub time: String,
    pub annotation: Annotation,
    pub image: PathBuf,
    pub mask: PathBuf,
}

impl Frame {
    /// `DATASET/NN_GT/INSTANCE_CENTERS/man_segNNN.tif`.
    pub fn centers(&self, root: &Path) -> PathBuf {
        root.join(format!("{}_{}", self.sequence, self.annotation.folder()))
            .join("INSTANCE_CENTERS")
            .join(format!("man_seg{}.tif", self.time))
    }

    /// `01/t003` — how messages and splits name a frame.
    pub fn key(&self) -> String {
        format!("{}/t{}", self.sequence, self.time)
    }
}

/// Lists the annotated frames of `sequences`. With `Both`, a frame with a GT
/// mask uses it and the silver truth fills the frames GT does not cover.
pub fn discover(
    root: &Path,
    sequences: &[String],
    annotations: Annotations,
) -> Result<Vec<Frame>, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingDataset(root.to_path_buf()));
    }
    let mut frames = Vec::new();
    for seq in sequences {
        let image_dir = root.join(seq);
        if !image_dir.is_dir() {
            return Err(DataError::MissingSequence {
                path: image_dir,
                available: list_sequences(root),
            });
        }
        let images = numbered_files(&image_dir, "t");
        let kinds: &[Annotation] = match annotations {
            Annotations::Gt => &[Annotation::GT],
            Annotations::St => &[Annotation::ST],
            Annotations::Both => &[Annotation::GT, Annotation::ST],
        };
        let mut by_time: BTreeMap<u64, Frame> = BTreeMap::new();
        let mut any_mask_dir = false;
        for &kind in kinds {
            let seg = root.join(format!("{seq}_{}", kind.folder())).join("SEG");
            if !seg.is_dir() {
                continue;
            }
            any_mask_dir = true;
            for (number, (digits, mask)) in numbered_files(&seg, "man_seg") {
                if by_time.contains_key(&number) {
                    continue;
                }
                let (_, image) =
                    images
                        .get(&number)
                        .ok_or_else(|| DataError::MaskWithoutImage {
                            mask: mask.clone(),
                            expected: image_dir.join(format!("t{digits}.tif")),
                        })?;
                by_time.insert(
                    number,
                    Frame {
                        sequence: seq.clone(),
                        time: digits,
                        annotation: kind,
                        image: image.clone(),
                        mask,
                    },
                );
            }
        }
        if !any_mask_dir {
            let wanted: Vec<String> = kinds
                .iter()
                .map(|k| {
                    root.join(format!("{seq}_{}/SEG", k.folder()))
                        .display()
                        .to_string()
                })
                .collect();
            return Err(DataError::NoAnnotations { wanted });
        }
        frames.extend(by_time.into_values());
    }
    Ok(frames)
}

/// `prefix` + digits + `.tif` files of a folder, by frame number.
fn numbered_files(dir: &Path, prefix: &str) -> BTreeMap<u64, (String, PathBuf)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".tif").or_else(|| r.strip_suffix(".tiff")))
        else {
            continue;
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = digits.parse() {
            out.insert(n, (digits.to_string(), entry.path()));
        }
    }
    out
}

fn list_sequences(root: &Path) -> Vec<String> {
    let mut seqs: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    seqs.sort();
    seqs
}
