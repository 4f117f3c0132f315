//! The training data of a run: the dataset synthesised if asked and missing,
//! centres and crops made current, and the crops split by frame.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{AutoSize, Config};
use crate::data::batches::split_frames;
use crate::data::crops::{load_crop_list, prepare_crops, CropItem, CropSpec};
use crate::data::ctc::discover;
use crate::data::dims::{frame_dims, FrameDims};
use crate::data::object_sizes::ObjectSizes;
use crate::data::synth::synthesize;
use crate::data::DataError;
use crate::progress::Reporter;

pub struct TrainData {
    pub items: Arc<Vec<CropItem>>,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub train_frames: BTreeSet<String>,
    pub val_frames: BTreeSet<String>,
    pub crop_dir: PathBuf,
}

impl TrainData {
    /// The frame split, as recorded with the run.
    pub fn split_json(&self) -> String {
        serde_json::json!({"train": self.train_frames, "val": self.val_frames}).to_string()
    }
}

/// The dataset synthesised where the config asks and it is missing, or
/// refreshed where esx made it (a no-op when current); a real dataset is
/// never touched.
fn synthesize_if_asked(config: &Config, reporter: &Reporter) -> Result<PathBuf, DataError> {
    let d = &config.data;
    if d.root.is_empty() {
        return Err(DataError::MissingDataset(PathBuf::from(
            "(data.root is not set: point it at a CTC dataset folder)",
        )));
    }
    let root = PathBuf::from(&d.root);
    if let Some(spec) = &d.synthetic {
        let missing = !root.join(&d.sequences[0]).is_dir();
        let ours = root.join(".esx-synth.json").is_file();
        if (missing || ours) && synthesize(&root, spec, reporter)? {
            reporter.note(format!(
                "synthesised a {} dataset in {}",
                serde_json::to_value(spec.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                root.display()
            ));
        }
    }
    Ok(root)
}

/// Training reads 2D frames only so far: a dataset of 3D stacks is one line
/// (before anything is written), not a failure at its first crop.
fn refuse_stacks(config: &Config, root: &std::path::Path) -> Result<(), DataError> {
    let d = &config.data;
    // A dataset that cannot be listed is said where it always was (no
    // masks for "auto" before the run; anything else on record).
    let Ok(frames) = discover(root, &d.sequences, d.annotations) else {
        return Ok(());
    };
    match frame_dims(&frames)? {
        FrameDims::Planar => Ok(()),
        FrameDims::Stacks { first, planes, .. } => {
            Err(DataError::StacksNotTrainable { first, planes })
        }
    }
}

/// A config's "auto" sizes made numbers from the objects in the dataset's
/// masks (its sequences' annotated frames: training and validation, never
/// a test set), with the measured sizes; None where nothing was "auto".
/// A dataset of stacks is refused here, "auto" or not.
pub fn resolve_auto(
    config: &Config,
    reporter: &Reporter,
) -> Result<(Config, Option<ObjectSizes>), DataError> {
    let root = synthesize_if_asked(config, reporter)?;
    refuse_stacks(config, &root)?;
    if !config.data.crop_size.is_auto() && !config.cluster.min_size.is_auto() {
        return Ok((config.clone(), None));
    }
    let d = &config.data;
    let sizes = ObjectSizes::read(&root, &d.sequences, d.annotations)?;
    let mut resolved = config.clone();
    if d.crop_size.is_auto() {
        resolved.data.crop_size = AutoSize::Fixed(sizes.auto_crop());
    }
    if config.cluster.min_size.is_auto() {
        resolved.cluster.min_size = AutoSize::Fixed(sizes.auto_min_size());
    }
    reporter.note(format!(
        "auto sizes: {}",
        sizes.describe(d.crop_size.is_auto(), config.cluster.min_size.is_auto())
    ));
    Ok((resolved, Some(sizes)))
}

/// Centres and crops made current and split by frame; the config's sizes
/// are resolved (`resolve_auto`).
pub fn prepare(config: &Config, reporter: &Reporter) -> Result<TrainData, DataError> {
    let d = &config.data;
    let root = synthesize_if_asked(config, reporter)?;
    refuse_stacks(config, &root)?;
    let crop_size = d.crop_size.fixed().ok_or_else(|| DataError::NoMasks {
        root: root.clone(),
        why: "data.crop_size was not resolved".into(),
    })?;
    let report = prepare_crops(
        &root,
        &d.sequences,
        &CropSpec::from_config(d, crop_size),
        reporter,
    )?;
    if report.written_frames > 0 {
        reporter.note(format!(
            "prepared {} crops of {} frames in {}",
            report.crops,
            report.frames,
            report.dir.display()
        ));
    }
    let items = load_crop_list(&report.dir)?;
    let frames: BTreeSet<String> = items.iter().map(|c| c.frame.clone()).collect();
    let (train_frames, val_frames) = split_frames(&frames, d.val_fraction, config.seed);
    let pick = |set: &BTreeSet<String>| -> Vec<usize> {
        items
            .iter()
            .enumerate()
            .filter(|(_, c)| set.contains(&c.frame))
            .map(|(i, _)| i)
            .collect()
    };
    let (train, val) = (pick(&train_frames), pick(&val_frames));
    if train.is_empty() {
        return Err(DataError::NoCrops {
            path: report.dir,
            why: "every frame went to validation; lower data.val_fraction".into(),
        });
    }
    Ok(TrainData {
        items: Arc::new(items),
        train,
        val,
        train_frames,
        val_frames,
        crop_dir: report.dir,
    })
}
