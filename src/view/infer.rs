//! Terminal renderings of `esx predict` and `esx eval` results.

use std::fmt::Write;
use std::path::Path;

use super::Table;
use crate::infer::evaluate::Candidate;
use crate::infer::files::PredictedFile;
use crate::metrics::Scores;

pub fn predictions(checkpoint: &Path, done: &[PredictedFile]) -> String {
    let mut t = Table::new(["image", "size", "instances", "seconds", "mask"]);
    for f in done {
        t.row([
            f.image.display().to_string(),
            format!("{}×{}", f.width, f.height),
            f.instances.to_string(),
            format!("{:.2}", f.seconds),
            f.mask.display().to_string(),
        ]);
    }
    format!("model {}\n{}", checkpoint.display(), t.render())
}

/// Per-frame AP50/AP75/SEG, then the summary per IoU threshold.
pub fn scores(s: &Scores) -> String {
    let mut out = String::new();
    let mut frames = Table::new(["frame", "objects", "predicted", "AP50", "AP75", "SEG"]);
    for f in &s.frames {
        frames.row([
            f.frame.clone(),
            f.n_true.to_string(),
            f.n_pred.to_string(),
            format!("{:.3}", f.ap[0]),
            format!("{:.3}", f.ap[5]),
            format!("{:.3}", f.seg),
        ]);
    }
    out.push_str(&frames.render());
    out.push('\n');
    let mut by_thresh = Table::new(["IoU", "AP (mean of frames)", "AP (pooled)"]);
    for (i, t) in s.thresholds.iter().enumerate() {
        by_thresh.row([
            format!("{t:.2}"),
            format!("{:.4}", s.ap_mean[i]),
            format!("{:.4}", s.ap_pooled[i]),
        ]);
    }
    out.push_str(&by_thresh.render());
    let _ = writeln!(
        out,
        "\n{} frames, {} objects, {} predicted: AP50 {:.4}  mean AP {:.4}  matched IoU {:.4}  SEG {:.4}",
        s.frames.len(),
        s.n_true,
        s.n_pred,
        s.ap50(),
        s.ap_mean.iter().sum::<f64>() / s.ap_mean.len() as f64,
        s.mean_matched_iou,
        s.seg
    );
    out
}

pub fn tuning(candidates: &[Candidate], best: usize) -> String {
    let mut t = Table::new(["fg_thresh", "mean AP", "AP50", ""]);
    for (i, c) in candidates.iter().enumerate() {
        t.row([
            format!("{:.2}", c.fg_thresh),
            format!("{:.4}", c.ap),
            format!("{:.4}", c.ap50),
            if i == best {
                "← best".into()
            } else {
                String::new()
            },
        ]);
    }
    t.render()
}
