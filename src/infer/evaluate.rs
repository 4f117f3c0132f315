//! Scoring a model on annotated frames (`esx eval`), and reading a run's
//! validation frames (what tuning searches on).

use std::path::Path;

use super::{InferError, Segmenter};
use crate::config::{Annotations, Config};
use crate::data::ctc::{discover, Frame};
use crate::data::tiff_io::{read_image, read_labels, RawImage};
use crate::data::{DataError, Grid};
use crate::metrics::{FrameScores, Scores};
use crate::progress::Reporter;
use crate::store::query::{events, last_position};
use crate::store::RunWriter;

/// The annotated frames of `sequences`; an error names the sequence that has none.
pub fn annotated_frames(
    root: &Path,
    sequences: &[String],
    annotations: Annotations,
) -> Result<Vec<Frame>, InferError> {
    let frames = discover(root, sequences, annotations)?;
    if sequences.is_empty() {
        return Err(InferError::NoFrames(format!(
            "{} holds no sequence (folders 01, 02, … with their {:?} masks in 01_GT, …); nothing to evaluate",
            root.display(),
            annotations
        )));
    }
    for seq in sequences {
        if !frames.iter().any(|f| &f.sequence == seq) {
            return Err(InferError::NoFrames(format!(
                "sequence {seq} of {} has no annotated frames ({:?} masks)",
                root.display(),
                annotations
            )));
        }
    }
    Ok(frames)
}

/// An annotated frame read into memory: its key, image and mask.
pub struct LoadedFrame {
    pub key: String,
    pub image: RawImage,
    pub truth: Grid<u32>,
}

impl LoadedFrame {
    pub fn read(frame: &Frame) -> Result<LoadedFrame, InferError> {
        let (image, truth) = load(frame)?;
        Ok(LoadedFrame {
            key: frame.key(),
            image,
            truth,
        })
    }
}

/// Predicts and clusters every frame and scores it against its mask.
pub fn evaluate(
    segmenter: &Segmenter,
    frames: &[Frame],
    reporter: &Reporter,
) -> Result<Scores, InferError> {
    let bar = reporter.stage("evaluating", frames.len() as u64);
    let mut scored = Vec::with_capacity(frames.len());
    for frame in frames {
        scored.push(score(segmenter, &LoadedFrame::read(frame)?)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let scores = Scores::of(scored);
    if scores.n_true == 0 {
        // AP and SEG over no object are undefined, not 0.
        return Err(InferError::NoFrames(format!(
            "the masks of the {} frames hold no object: nothing to score against",
            frames.len()
        )));
    }
    Ok(scores)
}

/// As `evaluate`, for frames already in memory.
pub fn evaluate_loaded(
    segmenter: &Segmenter,
    frames: &[LoadedFrame],
) -> Result<Scores, InferError> {
    Ok(Scores::of(
        frames
            .iter()
            .map(|f| score(segmenter, f))
            .collect::<Result<_, _>>()?,
    ))
}

fn score(segmenter: &Segmenter, frame: &LoadedFrame) -> Result<FrameScores, InferError> {
    let result = segmenter.segment(&frame.image)?;
    Ok(FrameScores::new(&frame.key, &frame.truth, &result.labels))
}

fn load(frame: &Frame) -> Result<(RawImage, Grid<u32>), InferError> {
    let raw = read_image(&frame.image)?;
    let truth = read_labels(&frame.mask)?;
    if (truth.width, truth.height) != (raw.width, raw.height) {
        return Err(DataError::SizeMismatch {
            image: frame.image.clone(),
            iw: raw.width,
            ih: raw.height,
            mask: frame.mask.clone(),
            mw: truth.width,
            mh: truth.height,
        }
        .into());
    }
    Ok((raw, truth))
}

/// The validation frames a run recorded at its start, from its dataset.
pub fn validation_frames(run_dir: &Path, config: &Config) -> Result<Vec<Frame>, InferError> {
    let split = events(run_dir)?
        .into_iter()
        .rev()
        .find(|e| e.kind == "split")
        .ok_or_else(|| {
            InferError::NoFrames(format!(
                "run {} recorded no frame split (an imported model has none): name the annotated frames to tune on with --data DIR",
                run_dir.display()
            ))
        })?;
    let keys: Vec<String> = serde_json::from_str::<serde_json::Value>(&split.detail)
        .ok()
        .and_then(|v| serde_json::from_value(v["val"].clone()).ok())
        .unwrap_or_default();
    let d = &config.data;
    let frames: Vec<Frame> = discover(Path::new(&d.root), &d.sequences, d.annotations)?
        .into_iter()
        .filter(|f| keys.contains(&f.key()))
        .collect();
    if frames.is_empty() {
        return Err(InferError::NoFrames(format!(
            "run {} has no validation frames to tune on (data.val_fraction was {})",
            run_dir.display(),
            d.val_fraction
        )));
    }
    Ok(frames)
}

/// Files an evaluation with its run: the scalars under split `test` (replacing
/// the previous evaluation's) at the run's last step, and the whole result as
/// an `eval` event (so earlier evaluations stay in the event history).
pub fn record_test(
    run_dir: &Path,
    scores: &Scores,
    context: serde_json::Value,
) -> Result<(), InferError> {
    let (step, epoch) = last_position(run_dir)?;
    let mut w = RunWriter::annotate(run_dir)?;
    w.clear_split("test")?;
    let (step, epoch) = (step.max(0) as u64, epoch.max(0) as u32);
    for (key, v) in scores.scalars() {
        w.log_scalar(step, epoch, "test", key, v)?;
    }
    for (t, v) in scores.thresholds.iter().zip(&scores.ap_mean) {
        w.log_scalar(step, epoch, "test", &format!("ap@{t:.2}"), *v)?;
    }
    let mut detail = context;
    detail["summary"] = serde_json::json!(scores
        .scalars()
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>());
    w.log_event("eval", &detail.to_string())?;
    w.close()?;
    Ok(())
}
