//! The training data of a run: the dataset synthesised if asked and missing,
//! centres and crops made current, and the crops split by frame.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::data::batches::split_frames;
use crate::data::crops::{load_crop_list, prepare_crops, CropItem, CropSpec};
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

pub fn prepare(config: &Config, reporter: &Reporter) -> Result<TrainData, DataError> {
    let d = &config.data;
    if d.root.is_empty() {
        return Err(DataError::MissingDataset(PathBuf::from(
            "(data.root is not set: point it at a CTC dataset folder)",
        )));
    }
    let root = PathBuf::from(&d.root);
    if let Some(spec) = &d.synthetic {
        // Synthesise when the dataset is missing, or refresh one esx made
        // (a no-op when it is current); never touch a real dataset.
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
    let report = prepare_crops(&root, &d.sequences, &CropSpec::from_config(d), reporter)?;
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
