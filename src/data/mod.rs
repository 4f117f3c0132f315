//! Data: Cell Tracking Challenge datasets, instance centres, training crops,
//! synthetic datasets, augmentation and batches.

pub mod augment;
pub mod batches;
pub mod budget;
pub mod centers;
pub mod centers_3d;
pub mod crops;
pub mod ctc;
pub mod dims;
mod fingerprint;
mod grid;
pub mod instances;
pub mod medoid;
pub mod medoid_3d;
pub mod normalize;
pub mod object_sizes;
pub mod prepare;
pub mod synth;
pub mod synth_3d;
pub mod tiff_io;
pub mod tiff_stack;
pub mod volume;

use std::path::{Path, PathBuf};

pub use grid::Grid;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("\"auto\" sizes come from the objects in {root}'s masks, but {why}; give data.crop_size and cluster.min_size as numbers")]
    NoMasks { root: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable TIFF: {why}")]
    Tiff { path: PathBuf, why: String },
    #[error("{path}: unsupported: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("{path}: {bad} of its {total} pixels are NaN or infinite; esx refuses such images (replace them first, e.g. by the image's minimum)")]
    NonFinite {
        path: PathBuf,
        bad: usize,
        total: usize,
    },
    #[error("{path}: {what} is more than this machine can spare for one image ({budget_mb} MB)")]
    TooLarge {
        path: PathBuf,
        what: String,
        budget_mb: u64,
    },
    #[error("dataset folder {0} does not exist")]
    MissingDataset(PathBuf),
    #[error("sequence folder {path} does not exist (sequences here: {})", list(.available))]
    MissingSequence {
        path: PathBuf,
        available: Vec<String>,
    },
    #[error("no annotations: none of {} exists", .wanted.join(", "))]
    NoAnnotations { wanted: Vec<String> },
    #[error("mask {mask} has no image (expected {expected})")]
    MaskWithoutImage { mask: PathBuf, expected: PathBuf },
    #[error("image {image} is {iw}×{ih} but its mask {mask} is {mw}×{mh}")]
    SizeMismatch {
        image: PathBuf,
        mask: PathBuf,
        iw: usize,
        ih: usize,
        mw: usize,
        mh: usize,
    },
    #[error("image {image} is {} but its mask {mask} is {}", planes(*.image_planes), planes(*.mask_planes))]
    PlanesMismatch {
        image: PathBuf,
        mask: PathBuf,
        image_planes: usize,
        mask_planes: usize,
    },
    #[error("{first} is a 3D stack of {planes} planes: esx does not train on 3D stacks yet (`esx prepare sizes` and `esx prepare centers` read them)")]
    StacksNotTrainable { first: PathBuf, planes: usize },
    #[error("the frames mix 2D images and 3D stacks: {planar} is a 2D image, {stack} a 3D stack of {planes} planes; a dataset is one or the other")]
    MixedDims {
        planar: PathBuf,
        stack: PathBuf,
        planes: usize,
    },
    #[error("crop size {crop} is larger than every image (largest {w}×{h}) and padding is off")]
    CropTooLarge { crop: usize, w: usize, h: usize },
    #[error("data.crop_size {crop} is far larger than every frame (the largest is {w}×{h}): its crops would be nearly all padding; use at most {limit}")]
    CropBeyondFrames {
        crop: usize,
        w: usize,
        h: usize,
        limit: usize,
    },
    #[error("data.crop_size {crop}: its {crops} crops would take about {need_mb} MB and {path} has {free_mb} MB free; nothing was written")]
    DiskBudget {
        crop: usize,
        crops: u64,
        need_mb: u64,
        free_mb: u64,
        path: PathBuf,
    },
    #[error("data.crop_size {crop}: cropping {frames} frames at once would hold about {need_mb} MB and this machine has {available_mb} MB available")]
    MemoryBudget {
        crop: usize,
        need_mb: u64,
        available_mb: u64,
        frames: usize,
    },
    #[error("no training crops in {path}: {why}")]
    NoCrops { path: PathBuf, why: String },
    #[error("{path}: {why}")]
    Manifest { path: PathBuf, why: String },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl DataError {
    /// Faults of the dataset as a whole, found before a run is recorded:
    /// such a run records nothing.
    pub fn records_nothing(&self) -> bool {
        matches!(
            self,
            DataError::NoMasks { .. }
                | DataError::StacksNotTrainable { .. }
                | DataError::MixedDims { .. }
                | DataError::PlanesMismatch { .. }
        )
    }
}

/// "a 2D image" or "a 3D stack of N planes".
fn planes(n: usize) -> String {
    if n == 1 {
        "a 2D image".into()
    } else {
        format!("a 3D stack of {n} planes")
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
