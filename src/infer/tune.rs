//! Tuning the post-processing on a run's validation frames: seed_thresh,
//! fg_thresh, min_size and whether test-time augmentation pays. The network
//! runs once per frame (and once more with TTA); only the clustering is
//! repeated, so the search is cheap. The result is recorded with the run
//! and predict, eval and report use it.
//!
//! The search: every (seed_thresh, fg_thresh) of a grid, with and without
//! TTA, at a quarter of the run's min_size; then min_size around the run's
//! at the best of those; then the grid once more at the chosen min_size.
//! The first grid is permissive on size because a min_size from the data
//! (the smallest training object) can exceed every object a young model
//! predicts, and then every threshold scores nothing alike. Ties go to the
//! candidate nearest the run's own values (EmbedSeg's defaults), so a flat
//! objective leaves them as they were. No candidate min_size is above 0.3 ×
//! the validation objects' median area (`FRAGMENT_OF_MEDIAN`): a few
//! validation frames can reward a min_size that deletes a fragment there and
//! real small objects everywhere else.

use std::path::Path;

use candle_core::Device;
use rayon::prelude::*;
use serde::Serialize;

use super::evaluate::{validation_frames, LoadedFrame};
use super::source::{TUNED_FG_THRESH, TUNED_MIN_SIZE, TUNED_SEED_THRESH, TUNED_TTA};
use crate::data::ctc::Frame;

use super::predict::mean;
use super::{
    cluster, ClusterParams, InferError, ModelSource, PredictOptions, Prediction, Segmenter,
};
use crate::config::{AutoSize, ClusterConfig, TuneObjective};
use crate::data::object_sizes::{fragment_limit, ObjectSizes, FRAGMENT_OF_MEDIAN};
use crate::data::Grid;
use crate::metrics::matching::{match_at, overlap, pool, MatchStats};
use crate::metrics::{FrameScores, Scores};
use crate::progress::Reporter;
use crate::store::query::last_position;
use crate::store::RunWriter;

const SEED_GRID: [f32; 8] = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];
const FG_GRID: [f32; 9] = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7];
const MIN_SIZE_FACTORS: [f64; 7] = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0];
/// The first grid's min_size, as a factor of the run's (see the module doc).
const FIRST_GRID_SIZE_FACTOR: f64 = 0.25;
/// min_size candidates as fractions of the validation objects' median area:
/// the run's own min_size may be no guide (EmbedSeg's rule takes the
/// smallest training object, a 1-pixel fragment in some real masks). The
/// last is the limit of every candidate.
const MEDIAN_AREA_FRACTIONS: [f64; 4] = [0.05, 0.1, 0.2, FRAGMENT_OF_MEDIAN];

/// One point of the search and its scores on the validation frames.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Trial {
    pub seed_thresh: f32,
    pub fg_thresh: f32,
    pub min_size: usize,
    pub tta: bool,
    pub ap50: f64,
    /// AP averaged over IoU 0.5…0.9.
    pub ap: f64,
    pub seg: f64,
}

impl Trial {
    pub fn objective(&self, objective: TuneObjective) -> f64 {
        match objective {
            TuneObjective::Ap50 => self.ap50,
            TuneObjective::Ap => self.ap,
            TuneObjective::Seg => self.seg,
        }
    }

    /// Into a config's clustering (thresholds to two decimals, as recorded).
    pub fn apply(&self, c: &mut ClusterConfig) {
        c.seed_thresh = two_decimals(self.seed_thresh);
        c.fg_thresh = two_decimals(self.fg_thresh);
        c.min_size = AutoSize::Fixed(self.min_size);
    }

    pub fn params(&self) -> ClusterParams {
        ClusterParams {
            seed_thresh: self.seed_thresh,
            fg_thresh: self.fg_thresh,
            min_size: self.min_size,
        }
    }
}

/// What tuning found: the run's own values and the chosen ones, scored on
/// the same frames, and every trial.
#[derive(Clone, Debug, Serialize)]
pub struct Tuning {
    pub objective: TuneObjective,
    pub frames: usize,
    /// Which frames: "validation frames", or "frames of DIR".
    pub frames_from: String,
    pub before: Trial,
    pub best: Trial,
    pub trials: Vec<Trial>,
    /// How far the 8 TTA views agree, at the run's own clustering: the F1 at
    /// IoU 0.5 of each view's instances against the instances of their
    /// mean, pooled over views and frames (1 = every view finds the same
    /// objects). Measured where TTA is tried and any object is found.
    pub view_agreement: Option<f64>,
}

/// The frames with their network outputs: plain, and with TTA when tried.
struct Predicted {
    truth: Vec<(String, Grid<u32>)>,
    plain: Vec<Prediction>,
    tta: Option<Vec<Prediction>>,
}

impl Predicted {
    /// The median pixel count of the objects in the truth masks (0 where
    /// there are none).
    fn median_area(&self) -> usize {
        let truths: Vec<Grid<u32>> = self.truth.iter().map(|(_, t)| t.clone()).collect();
        ObjectSizes::of(&truths).map_or(0, |s| s.median_area)
    }

    fn score(&self, params: &ClusterParams, tta: bool) -> Trial {
        let maps = match (&self.tta, tta) {
            (Some(t), true) => t,
            _ => &self.plain,
        };
        let frames: Vec<FrameScores> = maps
            .par_iter()
            .zip(&self.truth)
            .map(|(p, (key, truth))| FrameScores::new(key, truth, &cluster(p, params)))
            .collect();
        let s = Scores::of(frames);
        Trial {
            seed_thresh: params.seed_thresh,
            fg_thresh: params.fg_thresh,
            min_size: params.min_size,
            tta,
            ap50: s.ap50(),
            ap: s.ap_mean.iter().sum::<f64>() / s.ap_mean.len() as f64,
            seg: s.seg,
        }
    }
}

/// Tunes on `frames` (read into memory) with the segmenter's network; its
/// cluster params are the run's own values, where the search starts.
pub fn tune(
    segmenter: &Segmenter,
    frames: &[LoadedFrame],
    objective: TuneObjective,
    try_tta: bool,
    reporter: &Reporter,
) -> Result<Tuning, InferError> {
    if frames.iter().all(|f| f.truth.data.iter().all(|&v| v == 0)) {
        return Err(InferError::NoFrames(format!(
            "the {} validation frames' masks hold no object: nothing to tune on",
            frames.len()
        )));
    }
    // With TTA tried, each frame's 8 views are predicted once: the first is
    // the plain prediction and their mean the TTA one.
    let bar = reporter.stage(
        "tuning: predicting",
        (frames.len() * if try_tta { 8 } else { 1 }) as u64,
    );
    let mut plain = Vec::with_capacity(frames.len());
    let mut with_tta = try_tta.then(|| Vec::with_capacity(frames.len()));
    let mut agreement = Vec::new();
    let own = segmenter.cluster;
    for f in frames {
        let image = segmenter.normalised(&f.image);
        let mut options = segmenter.options;
        options.tta = false;
        match with_tta.as_mut() {
            None => {
                plain.push(segmenter.predictor.predict(&image, &options)?);
                bar.inc(1);
            }
            Some(t) => {
                let views = segmenter.predictor.views(&image, &options)?;
                bar.inc(8);
                let avg = mean(&views);
                agreement.extend(view_agreement(&views, &avg, &own));
                plain.push(views.into_iter().next().expect("8 views"));
                t.push(avg);
            }
        }
    }
    bar.finish_and_clear();
    let predicted = Predicted {
        truth: frames
            .iter()
            .map(|f| (f.key.clone(), f.truth.clone()))
            .collect(),
        plain,
        tta: with_tta,
    };
    let mut tuning = search(&predicted, segmenter.cluster, objective, try_tta);
    if try_tta {
        tuning.view_agreement = agreement_of(&agreement);
    }
    Ok(tuning)
}

/// Each view's instances matched at IoU 0.5 to those of the views' mean, all
/// clustered at `params` (one frame).
fn view_agreement(
    views: &[Prediction],
    avg: &Prediction,
    params: &ClusterParams,
) -> Vec<MatchStats> {
    let reference = cluster(avg, params);
    views
        .par_iter()
        .map(|v| match_at(&overlap(&reference, &cluster(v, params)), 0.5))
        .collect()
}

/// The F1 of all views' matches pooled; none where no view and no mean
/// found an object.
fn agreement_of(stats: &[MatchStats]) -> Option<f64> {
    let pooled = pool(stats);
    (pooled.n_true + pooled.n_pred > 0).then_some(pooled.f1)
}

/// How far a candidate lies from the run's own values (ties go nearer).
fn distance(t: &Trial, own: &ClusterParams) -> f64 {
    (t.seed_thresh - own.seed_thresh).abs() as f64
        + (t.fg_thresh - own.fg_thresh).abs() as f64
        + ((t.min_size as f64 + 1.0).ln() - (own.min_size as f64 + 1.0).ln()).abs() / 10.0
        + if t.tta { 0.01 } else { 0.0 }
}

fn better(a: &Trial, b: &Trial, objective: TuneObjective, own: &ClusterParams) -> bool {
    let (sa, sb) = (a.objective(objective), b.objective(objective));
    sa > sb + 1e-12 || ((sa - sb).abs() <= 1e-12 && distance(a, own) < distance(b, own))
}

fn search(p: &Predicted, own: ClusterParams, objective: TuneObjective, try_tta: bool) -> Tuning {
    let before = p.score(&own, false);
    let mut trials = vec![before];
    let mut best = before;
    let ttas: &[bool] = if try_tta { &[false, true] } else { &[false] };
    let grid = |min_size: usize, trials: &mut Vec<Trial>, best: &mut Trial| {
        for &tta in ttas {
            for &seed_thresh in &SEED_GRID {
                for &fg_thresh in FG_GRID.iter().filter(|&&fg| fg <= seed_thresh) {
                    let params = ClusterParams {
                        seed_thresh,
                        fg_thresh,
                        min_size,
                    };
                    let t = p.score(&params, tta);
                    trials.push(t);
                    if better(&t, best, objective, &own) {
                        *best = t;
                    }
                }
            }
        }
    };
    let median = p.median_area();
    let limit = if median > 0 {
        fragment_limit(median)
    } else {
        usize::MAX
    };
    let first = ((own.min_size as f64 * FIRST_GRID_SIZE_FACTOR).round() as usize).min(limit);
    grid(first, &mut trials, &mut best);
    let mut sizes: Vec<usize> = MIN_SIZE_FACTORS
        .iter()
        .map(|f| (own.min_size as f64 * f).round() as usize)
        .chain(
            MEDIAN_AREA_FRACTIONS
                .iter()
                .map(|f| (median as f64 * f).round() as usize),
        )
        .filter(|&m| m <= limit)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let at = best;
    for &min_size in sizes.iter().filter(|&&m| m != at.min_size) {
        let t = p.score(
            &ClusterParams {
                min_size,
                ..at.params()
            },
            at.tta,
        );
        trials.push(t);
        if better(&t, &best, objective, &own) {
            best = t;
        }
    }
    if best.min_size != first {
        grid(best.min_size, &mut trials, &mut best);
    }
    Tuning {
        objective,
        frames: p.plain.len(),
        frames_from: "validation frames".into(),
        before,
        best,
        trials,
        view_agreement: None,
    }
}

/// The frames a tuning searches on.
pub enum TuneFrames {
    /// The run's validation frames (at most `log.eval_frames` of them, as
    /// training scores them).
    Validation,
    /// Annotated frames the user names (`esx tune RUN --data DIR`), e.g. for
    /// an imported model, which has no validation frames of its own; `from`
    /// says where they lie.
    Given { frames: Vec<Frame>, from: String },
}

/// Tunes a run's model on `on`, starting from the run's own clustering
/// (before any earlier tuning), and records the result.
pub fn tune_source(
    source: &ModelSource,
    device: &Device,
    objective: TuneObjective,
    try_tta: bool,
    on: TuneFrames,
    reporter: &Reporter,
) -> Result<Tuning, InferError> {
    let Some(run_dir) = &source.run_dir else {
        return Err(InferError::NoFrames(
            "tuning needs a run (its validation frames), not a bare checkpoint".into(),
        ));
    };
    let mut config = source.config.clone();
    config.cluster = source.untuned.clone();
    let (frames, frames_from) = match on {
        TuneFrames::Validation => {
            let mut frames = validation_frames(run_dir, &config)?;
            frames.truncate(config.log.eval_frames.max(1));
            (frames, None)
        }
        TuneFrames::Given { frames, from } => (frames, Some(format!("frames of {from}"))),
    };
    let frames: Vec<LoadedFrame> = frames
        .iter()
        .map(LoadedFrame::read)
        .collect::<Result<_, _>>()?;
    let segmenter = Segmenter::load(
        &source.checkpoint,
        &config,
        PredictOptions::default(),
        device,
    )?;
    let mut tuning = tune(&segmenter, &frames, objective, try_tta, reporter)?;
    if let Some(from) = frames_from {
        tuning.frames_from = from;
    }
    record(run_dir, &tuning)?;
    Ok(tuning)
}

fn two_decimals(v: f32) -> f64 {
    (v as f64 * 100.0).round() / 100.0
}

/// Stores a tuning with its run: the chosen values as params (predict and
/// eval use them), the objective before and after as `val/*_untuned` and
/// `val/*_tuned` scalars at the run's last step, the whole table as a
/// `tuned` event.
pub fn record(run_dir: &Path, t: &Tuning) -> Result<(), InferError> {
    let (step, epoch) = last_position(run_dir)?;
    let (step, epoch) = (step.max(0) as u64, epoch.max(0) as u32);
    let mut w = RunWriter::annotate(run_dir)?;
    let b = &t.best;
    let round = |v: f32| toml::Value::Float(two_decimals(v));
    w.set_param(TUNED_SEED_THRESH, &round(b.seed_thresh))?;
    w.set_param(TUNED_FG_THRESH, &round(b.fg_thresh))?;
    w.set_param(TUNED_MIN_SIZE, &toml::Value::Integer(b.min_size as i64))?;
    w.set_param(TUNED_TTA, &toml::Value::Boolean(b.tta))?;
    for (suffix, trial) in [("tuned", &t.best), ("untuned", &t.before)] {
        for (key, v) in [("ap50", trial.ap50), ("ap", trial.ap), ("seg", trial.seg)] {
            w.log_scalar(step, epoch, "val", &format!("{key}_{suffix}"), v)?;
        }
    }
    if let Some(a) = t.view_agreement {
        w.log_scalar(step, epoch, "val", "view_agreement", a)?;
    }
    w.log_event("tuned", &serde_json::to_string(t).unwrap_or_default())?;
    w.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two square cells whose seed maps peak at 0.7: the default
    /// seed_thresh 0.9 finds nothing, a lower one finds both.
    fn two_cells() -> Predicted {
        let (w, h) = (16, 8);
        let mut p = Prediction::empty(w, h, 2);
        let mut truth = Grid::filled(w, h, 0u32);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let (id, cx) = if (1..7).contains(&x) && (1..7).contains(&y) {
                    (1, 3.5)
                } else if (9..15).contains(&x) && (1..7).contains(&y) {
                    (2, 11.5)
                } else {
                    (0, 0.0)
                };
                truth.data[i] = id;
                p.seed[i] = if id > 0 { 0.7 } else { 0.0 };
                // embeddings at the centre, a narrow bandwidth
                p.ex[i] = if id > 0 { cx } else { x as f32 };
                p.ey[i] = if id > 0 { 3.5 } else { y as f32 };
                for s in p.sigma.iter_mut() {
                    s[i] = 1.0;
                }
            }
        }
        Predicted {
            truth: vec![("01/000".into(), truth)],
            plain: vec![p],
            tta: None,
        }
    }

    /// `two_cells` with a false positive at `pixels` (x, y): seeds of 0.95,
    /// embedded out of the cells' reach, narrower than they are.
    fn two_cells_and_a_false_positive(pixels: impl Iterator<Item = (usize, usize)>) -> Predicted {
        let mut p = two_cells();
        let (w, prediction) = (16, &mut p.plain[0]);
        for (x, y) in pixels {
            let i = y * w + x;
            prediction.seed[i] = 0.95;
            prediction.ex[i] = 8.0;
            prediction.ey[i] = 9.0;
            for s in prediction.sigma.iter_mut() {
                s[i] = 1.5;
            }
        }
        p
    }

    /// Hand-worked: 8 views of two cells, in one of which the right cell's
    /// seeds fall under the threshold. The mean still finds both (its seed
    /// there is 7·0.7/8 + 0.3/8 ≈ 0.65 ≥ 0.5), so 7 views match 2 of 2 and
    /// that view 1 of 2: pooled TP 15, FP 0, FN 1, F1 = 30/31.
    #[test]
    fn view_agreement_counts_the_objects_a_view_misses() {
        let params = ClusterParams {
            seed_thresh: 0.5,
            fg_thresh: 0.5,
            min_size: 10,
        };
        let cells = two_cells().plain.remove(0);
        let mut views = vec![cells.clone(); 8];
        for (i, s) in views[3].seed.iter_mut().enumerate() {
            if i % 16 >= 8 && *s > 0.0 {
                *s = 0.3;
            }
        }
        let avg = mean(&views);
        let stats = view_agreement(&views, &avg, &params);
        assert_eq!(stats.len(), 8);
        let a = agreement_of(&stats).unwrap();
        assert!((a - 30.0 / 31.0).abs() < 1e-12, "{a}");
        // The same views all alike agree fully; nothing found is no number.
        let same = vec![cells; 8];
        assert_eq!(
            agreement_of(&view_agreement(&same, &mean(&same), &params)),
            Some(1.0)
        );
        let strict = ClusterParams {
            seed_thresh: 0.95,
            ..params
        };
        assert_eq!(
            agreement_of(&view_agreement(&same, &mean(&same), &strict)),
            None
        );
    }

    #[test]
    fn the_search_lowers_seed_thresh_where_the_seeds_are_lower() {
        let own = ClusterParams {
            seed_thresh: 0.9,
            fg_thresh: 0.5,
            min_size: 10,
        };
        let t = search(&two_cells(), own, TuneObjective::Ap50, false);
        assert_eq!(t.before.ap50, 0.0);
        assert_eq!(t.best.ap50, 1.0);
        // The highest seed threshold at or under the seeds, nearest 0.9.
        assert_eq!(t.best.seed_thresh, 0.7);
        assert_eq!(t.best.fg_thresh, 0.5);
        assert!(!t.best.tta);
        assert!(t.trials.len() > SEED_GRID.len());
    }

    #[test]
    fn min_size_above_the_objects_is_tuned_down() {
        // Objects of 36 pixels and a min_size of 50: nothing survives until
        // min_size comes down.
        let own = ClusterParams {
            seed_thresh: 0.5,
            fg_thresh: 0.5,
            min_size: 50,
        };
        let t = search(&two_cells(), own, TuneObjective::Ap50, false);
        assert_eq!(t.before.ap50, 0.0);
        assert_eq!(t.best.ap50, 1.0);
        // Nearest the run's own min_size among those that work and stay
        // fragment filters: 0.3 × the median area (36) = 11.
        assert_eq!(t.best.min_size, 11);
    }

    /// Two cells and a 20-pixel false positive. Its size lies between 0.3 ×
    /// the cells' median area (36 → 11) and the run's own min_size (50), so
    /// the validation frames would reward 25 (0.5 × 50, which drops it and
    /// keeps the cells); the search stays at fragment sizes and keeps it.
    #[test]
    fn min_size_is_not_tuned_above_the_fragment_limit() {
        let blob = (0..16).map(|x| (x, 0)).chain((1..5).map(|y| (8, y)));
        let p = two_cells_and_a_false_positive(blob);
        let own = ClusterParams {
            seed_thresh: 0.6,
            fg_thresh: 0.5,
            min_size: 50,
        };
        let at = |min_size| p.score(&ClusterParams { min_size, ..own }, false);
        assert_eq!(at(25).ap50, 1.0, "25 drops the blob, keeps the cells");
        assert!(at(11).ap50 < 1.0, "11 keeps the blob");
        let t = search(&p, own, TuneObjective::Ap50, false);
        assert!(
            t.trials[1..].iter().all(|t| t.min_size <= 11),
            "a candidate above the limit"
        );
        assert!(t.best.min_size <= 11, "{:?}", t.best);
        assert!(
            t.best.ap50 < 1.0 && t.best.ap50 > t.before.ap50,
            "{:?}",
            t.best
        );
    }

    #[test]
    fn seeds_and_sizes_both_off_are_found_together() {
        // Seeds peak at 0.7 under a seed_thresh of 0.9 and the objects (36
        // pixels) are under a min_size of 50: neither change alone finds an
        // object, so a search that starts at the run's min_size sees a flat
        // zero (a young model with a min_size from the data, on real data).
        let own = ClusterParams {
            seed_thresh: 0.9,
            fg_thresh: 0.5,
            min_size: 50,
        };
        let t = search(&two_cells(), own, TuneObjective::Ap50, false);
        assert_eq!(t.before.ap50, 0.0);
        assert_eq!(t.best.ap50, 1.0);
        assert_eq!((t.best.seed_thresh, t.best.min_size), (0.7, 11));
    }

    #[test]
    fn a_degenerate_min_size_is_tuned_from_the_objects_sizes() {
        // A min_size of 1 (the smallest "object" of real masks can be one
        // pixel) keeps a 10-pixel speck the seeds reach: a false positive
        // that only a min_size near the objects' size removes, beyond every
        // multiple of 1 on the grid (at most 8).
        let speck = (0..8).map(|y| (8, y)).chain([(0, 0), (0, 1)]);
        let p = two_cells_and_a_false_positive(speck);
        let own = ClusterParams {
            seed_thresh: 0.6,
            fg_thresh: 0.5,
            min_size: 1,
        };
        let t = search(&p, own, TuneObjective::Ap50, false);
        assert!(t.before.ap50 < 1.0, "{:?}", t.before);
        assert_eq!(t.best.ap50, 1.0, "{:?}", t.best);
        // 0.3 × the median area (36) = 11: the one candidate that drops
        // the speck and keeps the cells.
        assert_eq!(t.best.min_size, 11);
    }

    #[test]
    fn a_flat_objective_keeps_the_run_s_values() {
        let own = ClusterParams {
            seed_thresh: 0.6,
            fg_thresh: 0.5,
            min_size: 10,
        };
        let t = search(&two_cells(), own, TuneObjective::Ap, false);
        assert_eq!(t.before.ap50, 1.0);
        assert_eq!(t.best.params(), own);
    }
}
