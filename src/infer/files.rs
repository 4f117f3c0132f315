//! `esx predict` over files: expand inputs, segment each image, write CTC
//! result masks (`maskNNN.tif`, frame numbers kept) and optional overlays.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{InferError, Segmenter};
use crate::data::tiff_io::{read_image_as_grey, write_labels};
use crate::data::DataError;
use crate::progress::Reporter;
use crate::viz;

/// Files as given, folders as their `.tif`/`.tiff` files in name order.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, InferError> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| DataError::io(input, e))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_tiff(p))
                .collect();
            if found.is_empty() {
                return Err(InferError::NoFrames(format!(
                    "{} holds no .tif images",
                    input.display()
                )));
            }
            found.sort();
            out.extend(found);
        } else if input.is_file() {
            out.push(input.clone());
        } else {
            return Err(
                DataError::io(input, std::io::Error::from(std::io::ErrorKind::NotFound)).into(),
            );
        }
    }
    Ok(out)
}

fn is_tiff(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"))
}

/// `t013.tif` → `mask013`, keeping the frame's digits as CTC expects;
/// any other name → `mask_<stem>`.
pub fn mask_stem(image: &Path) -> String {
    let stem = image
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image");
    match stem.strip_prefix('t') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => format!("mask{d}"),
        _ => format!("mask_{stem}"),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PredictedFile {
    pub image: PathBuf,
    pub mask: PathBuf,
    pub overlay: Option<PathBuf>,
    pub width: usize,
    pub height: usize,
    pub instances: usize,
    pub seconds: f64,
}

pub fn predict_files(
    segmenter: &Segmenter,
    images: &[PathBuf],
    out: &Path,
    png: bool,
    reporter: &Reporter,
) -> Result<Vec<PredictedFile>, InferError> {
    let stems: Vec<String> = images.iter().map(|p| mask_stem(p)).collect();
    for (i, s) in stems.iter().enumerate() {
        if let Some(j) = stems[..i].iter().position(|t| t == s) {
            return Err(InferError::NoFrames(format!(
                "{} and {} would both be written as {s}.tif; predict them into separate --out folders",
                images[j].display(),
                images[i].display()
            )));
        }
    }
    if out.exists() && !out.is_dir() {
        return Err(InferError::NoFrames(format!(
            "--out {}: is a file, not a folder; --out names the folder the masks go to",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let bar = reporter.stage("predicting", images.len() as u64);
    let mut done = Vec::with_capacity(images.len());
    for (path, stem) in images.iter().zip(&stems) {
        let start = Instant::now();
        let (raw, converted) = read_image_as_grey(path)?;
        if converted {
            reporter.warn(format!(
                "{}: RGB image converted to grey (luminance)",
                path.display()
            ));
        }
        let result = segmenter.segment(&raw)?;
        let mask = out.join(format!("{stem}.tif"));
        write_labels(&mask, &result.labels)?;
        let overlay = if png {
            let p = out.join(format!("{stem}.png"));
            viz::overlay(&result.image, &result.labels)
                .save(&p)
                .map_err(|e| DataError::io(&p, std::io::Error::other(e)))?;
            Some(p)
        } else {
            None
        };
        let mut ids: Vec<u32> = result
            .labels
            .data
            .iter()
            .copied()
            .filter(|&v| v > 0)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        done.push(PredictedFile {
            image: path.clone(),
            mask,
            overlay,
            width: raw.width,
            height: raw.height,
            instances: ids.len(),
            seconds: start.elapsed().as_secs_f64(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_names_keep_ctc_frame_digits() {
        assert_eq!(mask_stem(Path::new("a/01/t013.tif")), "mask013");
        assert_eq!(mask_stem(Path::new("t0007.tiff")), "mask0007");
        assert_eq!(mask_stem(Path::new("cells.tif")), "mask_cells");
        assert_eq!(mask_stem(Path::new("t.tif")), "mask_t");
    }
}
