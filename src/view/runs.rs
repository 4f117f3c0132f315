//! Runs as the terminal shows them: `esx ls`, `esx show`, `esx export`.

use std::fmt::Write;

use super::{duration, local_time, number, Table};
use crate::infer::source::{
    AUTO_CROP_SIZE, AUTO_MIN_SIZE, TUNED_FG_THRESH, TUNED_MIN_SIZE, TUNED_SEED_THRESH, TUNED_TTA,
};
use crate::store::query::{Event, ImageInfo, MetricPoint, RunInfo};
use crate::train::RunResult;

/// The metrics a researcher looks at first, shown when any run has them.
const HEADLINE: &[(&str, &str, &str)] = &[
    ("val", "iou", "BEST VAL IOU"),
    ("val", "loss", "LAST VAL LOSS"),
    ("test", "ap50", "TEST AP50"),
];

pub fn runs_table(runs: &[RunInfo]) -> String {
    let columns: Vec<_> = HEADLINE
        .iter()
        .filter(|(split, key, _)| runs.iter().any(|r| r.summary(split, key).is_some()))
        .collect();
    let any_sweep = runs.iter().any(|r| r.sweep_id.is_some());
    let any_tags = runs.iter().any(|r| !r.tags.is_empty());
    let mut header = vec!["ID", "NAME", "STATUS", "HOST", "CREATED", "DURATION"];
    if any_sweep {
        header.push("SWEEP");
    }
    if any_tags {
        header.push("TAGS");
    }
    header.extend(columns.iter().map(|c| c.2));
    let mut table = Table::new(header);
    for r in runs {
        let mut row = vec![
            r.id.clone(),
            r.name.clone(),
            r.status.as_str().to_string(),
            r.host.clone(),
            local_time(r.created),
            duration(r.duration()),
        ];
        if any_sweep {
            row.push(match (&r.sweep_id, r.sweep_index) {
                (Some(id), Some(i)) => format!("{id}#{i}"),
                _ => "-".into(),
            });
        }
        if any_tags {
            row.push(if r.tags.is_empty() {
                "-".into()
            } else {
                r.tags.join(",")
            });
        }
        for (split, key, title) in &columns {
            let s = r.summary(split, key);
            let v = if title.starts_with("BEST") {
                s.and_then(|s| s.max)
            } else {
                s.and_then(|s| s.last)
            };
            row.push(number(v));
        }
        table.row(row);
    }
    table.render()
}

/// The numbers a run's "auto" sizes became.
fn auto_line(r: &RunInfo) -> Option<String> {
    let num = |k: &str| r.params.get(k).and_then(|p| p.num);
    let given = |k: &str| r.params.get(k).is_some_and(|p| p.value != "auto");
    let parts: Vec<String> = [
        ("crop_size", AUTO_CROP_SIZE, "data.crop_size"),
        ("min_size", AUTO_MIN_SIZE, "cluster.min_size"),
    ]
    .iter()
    .filter(|(_, key, own)| num(key).is_some() && !given(own))
    .map(|(name, key, _)| format!("{name} {}", num(key).unwrap_or_default()))
    .collect();
    (!parts.is_empty()).then(|| format!("{} (from the objects in the masks)", parts.join(", ")))
}

/// Where an imported run's model came from.
fn imported_line(r: &RunInfo) -> Option<String> {
    use crate::infer::import::{
        IMPORT_BEST_IOU, IMPORT_EPOCH, IMPORT_FORMAT, IMPORT_SHA256, IMPORT_SOURCE,
    };
    let text = |k: &str| r.params.get(k).map(|p| p.value.clone());
    let num = |k: &str| r.params.get(k).and_then(|p| p.num);
    let mut line = format!(
        "{} ({} file, sha256 {})",
        text(IMPORT_SOURCE)?,
        text(IMPORT_FORMAT).unwrap_or_default(),
        text(IMPORT_SHA256).unwrap_or_default()
    );
    if let Some(e) = num(IMPORT_EPOCH) {
        line.push_str(&format!(", trained {e} epochs"));
    }
    if let Some(v) = num(IMPORT_BEST_IOU) {
        line.push_str(&format!(", best validation IoU {v:.4}"));
    }
    Some(line)
}

/// Where a run's weights came from, ancestors first-to-last: "run ID (name)
/// ← run ID2 (name2) ← imported FILE". None for a run trained from scratch
/// and not imported. Runs are looked up where their child recorded them,
/// else by id beside the child; at most 8 generations.
pub fn lineage(r: &RunInfo) -> Option<String> {
    use crate::infer::import::IMPORT_SOURCE;
    use crate::train::init::{INIT_RUN, INIT_RUN_DIR, INIT_SOURCE};
    let text = |r: &RunInfo, k: &str| r.params.get(k).map(|p| p.value.clone());
    let mut parts: Vec<String> = Vec::new();
    let mut current = r.clone();
    for _ in 0..8 {
        if let Some(id) = text(&current, INIT_RUN) {
            let recorded = text(&current, INIT_RUN_DIR).map(std::path::PathBuf::from);
            let beside = current
                .dir
                .parent()
                .map(|root| crate::store::select::resolve_run(&id, root));
            let parent = recorded
                .filter(|d| d.is_dir())
                .and_then(|d| crate::store::query::read_run(&d).ok())
                .or_else(|| match beside {
                    Some(Ok(d)) => crate::store::query::read_run(&d).ok(),
                    _ => None,
                });
            match parent {
                Some(p) => {
                    parts.push(format!("run {} ({})", p.id, p.name));
                    current = p;
                }
                None => {
                    parts.push(format!("run {id} (not found)"));
                    break;
                }
            }
        } else if let Some(file) = text(&current, INIT_SOURCE) {
            parts.push(file);
            break;
        } else if let Some(file) = text(&current, IMPORT_SOURCE) {
            if current.id != r.id {
                parts.push(format!("imported {file}"));
            }
            break;
        } else {
            break;
        }
    }
    (!parts.is_empty()).then(|| parts.join(" ← "))
}

/// What tuning chose, and the objective before and after.
fn tuned_line(r: &RunInfo, events: &[Event]) -> Option<String> {
    let num = |k: &str| r.params.get(k).and_then(|p| p.num);
    let (seed, fg) = (num(TUNED_SEED_THRESH)?, num(TUNED_FG_THRESH)?);
    let mut line = format!(
        "seed_thresh {seed:.2}, fg_thresh {fg:.2}, min_size {}, TTA {}",
        num(TUNED_MIN_SIZE).unwrap_or_default(),
        if num(TUNED_TTA).unwrap_or_default() != 0.0 {
            "on"
        } else {
            "off"
        }
    );
    let last = events.iter().rev().find(|e| e.kind == "tuned");
    if let Some(t) = last.and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok()) {
        let objective = t["objective"].as_str().unwrap_or("?");
        let value = |trial: &str| t[trial][objective].as_f64().unwrap_or(f64::NAN);
        line.push_str(&format!(
            " ({objective} {:.3} → {:.3} on {} {})",
            value("before"),
            value("best"),
            t["frames"].as_u64().unwrap_or(0),
            t["frames_from"].as_str().unwrap_or("validation frames")
        ));
    }
    Some(line)
}

pub fn run_details(r: &RunInfo, images: &[ImageInfo], events: &[Event]) -> String {
    let mut s = String::new();
    let field = |s: &mut String, k: &str, v: &str| {
        let _ = writeln!(s, "{k:<11}{}", crate::text::printable(v));
    };
    field(&mut s, "id", &r.id);
    field(&mut s, "name", &r.name);
    field(&mut s, "status", r.status.as_str());
    if let Some(e) = &r.error {
        field(&mut s, "error", e);
    }
    field(&mut s, "created", &local_time(r.created));
    if let Some(e) = r.ended {
        field(&mut s, "ended", &local_time(e));
    }
    field(&mut s, "duration", &duration(r.duration()));
    field(&mut s, "host", &format!("{} (pid {})", r.host, r.pid));
    if let Some(job) = &r.slurm_job {
        field(&mut s, "slurm job", job);
    }
    if let (crate::store::RunStatus::Running, Some(beat)) = (r.status, r.heartbeat) {
        let ago = (crate::store::provenance::now() - beat).max(0.0);
        field(&mut s, "heartbeat", &format!("{} ago", duration(ago)));
    }
    field(
        &mut s,
        "journal",
        &format!("{} (run directory on {})", r.journal, r.filesystem),
    );
    if let Some(c) = &r.git_commit {
        let dirty = if r.git_dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        };
        field(&mut s, "git", &format!("{c}{dirty}"));
    }
    field(&mut s, "command", &r.command.join(" "));
    field(&mut s, "cwd", &r.cwd);
    if let Some(e) = &r.experiment {
        field(&mut s, "experiment", e);
    }
    if !r.overrides.is_empty() {
        field(&mut s, "overrides", &r.overrides.join(" "));
    }
    if let (Some(id), Some(i)) = (&r.sweep_id, r.sweep_index) {
        let swept = r
            .swept
            .as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        field(&mut s, "sweep", &format!("{id} #{i} {swept}"));
    }
    field(&mut s, "dir", &r.dir.display().to_string());
    if let Some(line) = imported_line(r) {
        field(&mut s, "imported", &line);
    }
    if let Some(line) = lineage(r) {
        field(&mut s, "init", &line);
    }
    if let Some(line) = auto_line(r) {
        field(&mut s, "auto", &line);
    }
    if let Some(line) = tuned_line(r, events) {
        field(&mut s, "tuned", &line);
    }
    if !r.tags.is_empty() {
        field(&mut s, "tags", &r.tags.join(" "));
    }
    for n in &r.notes {
        field(
            &mut s,
            "note",
            &format!("{}  {}", local_time(n.wall), n.text),
        );
    }

    if !r.summary.is_empty() {
        let mut t = Table::new(["SPLIT", "KEY", "LAST", "MIN", "MAX", "STEPS", "LAST STEP"]);
        for m in &r.summary {
            t.row([
                m.split.clone(),
                m.key.clone(),
                number(m.last),
                number(m.min),
                number(m.max),
                m.count.to_string(),
                m.last_step.to_string(),
            ]);
        }
        let _ = write!(s, "\nmetrics\n{}", t.render());
    }
    if !images.is_empty() {
        let mut t = Table::new(["ID", "EPOCH", "KIND", "BYTES"]);
        for i in images {
            t.row([
                i.id.to_string(),
                i.epoch.to_string(),
                i.kind.clone(),
                i.bytes.to_string(),
            ]);
        }
        let _ = write!(s, "\nimages\n{}", t.render());
    }
    if !events.is_empty() {
        let mut t = Table::new(["TIME", "EVENT", "DETAIL"]);
        for e in events {
            t.row([local_time(e.wall), e.kind.clone(), e.detail.clone()]);
        }
        let _ = write!(s, "\nevents\n{}", t.render());
    }
    let _ = write!(s, "\nconfig\n{}", r.config);
    s
}

/// Metric rows as CSV with a header; `run` names the run of each row.
pub fn metrics_csv(rows: &[(String, MetricPoint)]) -> String {
    let mut s = String::from("run,step,epoch,split,key,value,wall\n");
    for (run, m) in rows {
        let value = m.value.map(|v| v.to_string()).unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{:.3}",
            csv_field(run),
            m.step,
            m.epoch,
            csv_field(&m.split),
            csv_field(&m.key),
            value,
            m.wall
        );
    }
    s
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The one-screen summary at the end of `esx run`.
pub fn run_summary(r: &RunResult) -> String {
    let mut s = String::new();
    let root = r
        .dir
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "run        {} {} after {} epochs, {} steps",
        r.id,
        r.status.as_str(),
        r.epochs,
        r.steps
    );
    if let Some(e) = &r.last {
        let _ = writeln!(
            s,
            "train      loss {:.4} (instance {:.4}, variance {:.4}, seed {:.4})",
            e.train.loss, e.train.inst, e.train.var, e.train.seed
        );
        if let (Some(v), Some(iou)) = (&e.val, e.val_iou) {
            let _ = writeln!(
                s,
                "validation loss {:.4} (instance {:.4}, variance {:.4}, seed {:.4}), IoU {:.3}",
                v.loss, v.inst, v.var, v.seed, iou
            );
        }
    }
    if let Some((by, best)) = r.best {
        let _ = writeln!(
            s,
            "best       val {} {best:.3}: {}",
            by.name(),
            r.dir.join("checkpoints/best.safetensors").display()
        );
    }
    let _ = writeln!(s, "store      {}", r.dir.join("run.db").display());
    let _ = writeln!(
        s,
        "next       esx show {} --runs {root}   |   esx ls {root}",
        r.id
    );
    if r.status == crate::store::RunStatus::Interrupted {
        let _ = writeln!(s, "resume     esx run --resume {} --runs {root}", r.id);
    }
    s
}

/// The line printed after each training epoch.
pub fn epoch_line(r: &crate::train::EpochReport, epochs: u32) -> String {
    let mut val = match (&r.val, r.val_iou) {
        (Some(v), Some(iou)) => format!("  val loss {:.4} IoU {:.3}", v.loss, iou),
        _ => String::new(),
    };
    if let Some(ap50) = r.val_ap50 {
        val.push_str(&format!(" AP50 {ap50:.3}"));
    }
    if let Some(ap) = r.val_ap {
        val.push_str(&format!(" AP {ap:.3}"));
    }
    format!(
        "epoch {}/{}  train loss {:.4} (inst {:.4} var {:.4} seed {:.4}){}  lr {:.2e}  {:.1} img/s  {}",
        r.epoch,
        epochs,
        r.train.loss,
        r.train.inst,
        r.train.var,
        r.train.seed,
        val,
        r.lr,
        r.images_per_s,
        super::duration(r.seconds)
    ) + &r
        .device
        .as_ref()
        .map(|d| format!("  ({d})"))
        .unwrap_or_default()
}
