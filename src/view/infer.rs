//! Terminal renderings of `esx predict` and `esx eval` results.

use std::fmt::Write;
use std::path::Path;

use super::Table;
use crate::infer::files::PredictedFile;
use crate::infer::import::Imported;
use crate::infer::tune::{Trial, Tuning};
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

/// What `esx import` recorded, and how to use it.
pub fn imported(i: &Imported) -> String {
    let mut s = format!(
        "imported {} as run {} ({}): {} file, {} tensors, n_sigma {}\n",
        i.source.display(),
        i.id,
        i.name,
        i.format,
        i.tensors,
        i.n_sigma
    );
    if let Some(e) = i.epoch {
        s.push_str(&format!("its training: epoch {e}"));
        if let Some(iou) = i.best_iou {
            s.push_str(&format!(", best validation IoU {iou:.4}"));
        }
        s.push('\n');
    }
    s.push_str(&format!("sha256     {}\n", i.sha256));
    s.push_str(&format!(
        "predict    esx predict {} IMAGES --out DIR\n",
        i.id
    ));
    s.push_str(&format!("fine-tune  esx run CONFIG init={}\n", i.id));
    s
}

/// A tuning: the best trials, then the run's own values against the chosen.
pub fn tuning(t: &Tuning) -> String {
    let mut trials = t.trials.clone();
    trials.sort_by(|a, b| {
        b.objective(t.objective)
            .total_cmp(&a.objective(t.objective))
    });
    let mut table = Table::new([
        "seed_thresh",
        "fg_thresh",
        "min_size",
        "TTA",
        "AP50",
        "AP",
        "SEG",
        "",
    ]);
    let row = |table: &mut Table, x: &Trial, mark: &str| {
        table.row([
            format!("{:.2}", x.seed_thresh),
            format!("{:.2}", x.fg_thresh),
            x.min_size.to_string(),
            if x.tta { "yes" } else { "no" }.into(),
            format!("{:.4}", x.ap50),
            format!("{:.4}", x.ap),
            format!("{:.4}", x.seg),
            mark.to_string(),
        ]);
    };
    row(&mut table, &t.before, "the run's own");
    for x in trials.iter().take(8) {
        row(&mut table, x, if *x == t.best { "← chosen" } else { "" });
    }
    let agreement = match t.view_agreement {
        Some(a) => {
            format!("; the 8 TTA views agree at F1 {a:.4} (IoU 0.5, the run's own clustering)")
        }
        None => String::new(),
    };
    format!(
        "tuned on {} {}, {} trials, objective {}: {:.4} → {:.4}{agreement}\n{}",
        t.frames,
        t.frames_from,
        t.trials.len(),
        t.objective.name(),
        t.before.objective(t.objective),
        t.best.objective(t.objective),
        table.render()
    )
}
