//! Sweeps as the terminal shows them: the plan (`--dry-run`) and the summary
//! table printed when a sweep ends.

use std::fmt::Write;

use super::{duration, number, Table};
use crate::config::overrides::format_value;
use crate::sweep::launch::SweepReport;
use crate::sweep::local::LocalOptions;
use crate::sweep::{slurm, PointState, PointStatus, Sweep};

/// `--dry-run`: one line per point with its overrides and what a launch
/// would do with it.
pub fn sweep_plan(sweep: &Sweep, states: &[PointState]) -> String {
    let mut s = format!(
        "sweep {} ({} points{}) in {}\nsearch: {}\n",
        sweep.id,
        sweep.points.len(),
        match sweep.mode {
            crate::sweep::Mode::Tpe { n, .. } => format!(" of {n} proposed so far"),
            _ => String::new(),
        },
        sweep.dir.display(),
        sweep.search.describe()
    );
    let mut table = Table::new(["#", "OVERRIDES", "PLAN"]);
    for (p, state) in sweep.points.iter().zip(states) {
        let plan = match state.status {
            PointStatus::Pending => "run".to_string(),
            PointStatus::Completed => "skip (completed)".into(),
            PointStatus::Pruned => "skip (pruned)".into(),
            PointStatus::Running => "skip (running)".into(),
            PointStatus::Interrupted
                if crate::sweep::Task::for_point(p, state).is_some_and(|t| t.resume.is_some()) =>
            {
                "resume (interrupted)".into()
            }
            other => format!("run again ({})", other.as_str()),
        };
        table.row([p.index.to_string(), p.overrides().join(" "), plan]);
    }
    if !sweep.points.is_empty() {
        s.push_str(&table.render());
    }
    s
}

/// `--dry-run` of a TPE search: the points the free slots would start now,
/// and that the rest are proposed from results.
pub fn tpe_preview(sweep: &Sweep, trials: usize, next: &[(crate::sweep::Point, String)]) -> String {
    let mut s = String::new();
    if next.is_empty() {
        let _ = writeln!(
            s,
            "every one of the {trials} trials is proposed; nothing new would start"
        );
        return s;
    }
    let _ = writeln!(
        s,
        "the {} free slot{} would start:",
        next.len(),
        if next.len() == 1 { "" } else { "s" }
    );
    let mut table = Table::new(["#", "OVERRIDES", "HOW"]);
    for (p, how) in next {
        table.row([p.index.to_string(), p.overrides().join(" "), how.clone()]);
    }
    s.push_str(&table.render());
    let later = trials.saturating_sub(sweep.points.len() + next.len());
    if later > 0 {
        let _ = writeln!(
            s,
            "then {later} more, each proposed by TPE from the results when a slot frees (adaptive: not known now)"
        );
    }
    s
}

/// The table at the end of a sweep: every point, its swept values, status,
/// best validation IoU and duration; then the errors of points that failed.
/// The local launcher's line: slots, threads each and devices.
pub fn local_launcher_line(o: &LocalOptions) -> String {
    format!(
        "local launcher: {} at once, {} thread{} each{}",
        o.jobs,
        o.threads,
        if o.threads == 1 { "" } else { "s" },
        if o.gpus.is_empty() {
            String::new()
        } else {
            format!(", CUDA devices {:?}", o.gpus)
        }
    )
}

pub fn sweep_summary(report: &SweepReport) -> String {
    let mut header = vec!["#".to_string()];
    header.extend(report.axes.iter().cloned());
    header.push("STATUS".into());
    header.push("EPOCHS".into());
    header.push(format!("BEST {}", report.objective.to_uppercase()));
    header.extend(["DURATION", "RUN"].map(String::from));
    let mut table = Table::new(header);
    let mut problems = String::new();
    for (point, state) in &report.points {
        let mut row = vec![point.index.to_string()];
        row.extend(point.values.iter().map(|(_, v)| format_value(v)));
        row.push(state.status.as_str().to_string());
        row.push(
            state
                .run
                .as_ref()
                .and_then(|r| r.summary("train", "loss"))
                .map_or("-".into(), |s| s.count.to_string()),
        );
        let value = report.objectives.get(point.index).copied().flatten();
        let mark = if report.best.is_some_and(|b| b.0 == point.index) {
            " *"
        } else {
            ""
        };
        row.push(format!("{}{mark}", number(value)));
        row.push(
            state
                .run
                .as_ref()
                .map_or("-".into(), |r| duration(r.duration())),
        );
        row.push(state.run.as_ref().map_or("-".into(), |r| r.id.clone()));
        table.row(row);
        match state.status {
            PointStatus::Failed | PointStatus::Crashed => {
                let why = state
                    .run
                    .as_ref()
                    .and_then(|r| r.error.clone())
                    .unwrap_or_else(|| {
                        format!("no error recorded; see {}", log_of(report, point.index))
                    });
                let _ = writeln!(
                    problems,
                    "  #{} {}: {why}",
                    point.index,
                    state.status.as_str()
                );
            }
            PointStatus::Pending if report.waited && was_launched(report, point.index) => {
                let _ = writeln!(
                    problems,
                    "  #{} ended without recording a run; see {}",
                    point.index,
                    log_of(report, point.index)
                );
            }
            _ => {}
        }
    }
    let mut s = table.render();
    if !problems.is_empty() {
        s.push_str("problems:\n");
        s.push_str(&problems);
    }
    let completed = report
        .points
        .iter()
        .filter(|(_, st)| st.status == PointStatus::Completed)
        .count();
    let pruned = report
        .points
        .iter()
        .filter(|(_, st)| st.status == PointStatus::Pruned)
        .count();
    let _ = writeln!(s, "search: {}", report.search);
    if let Some((index, value)) = report.best {
        let label = report
            .points
            .iter()
            .find(|(p, _)| p.index == index)
            .map(|(p, _)| p.label())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "best: #{index} {} {value:.4} ({label})",
            report.objective
        );
    }
    let _ = writeln!(
        s,
        "sweep {}: {completed}/{} completed{}; {} launched now, {} skipped; {:.1} s; `esx ls --sweep {}` lists its runs",
        report.id,
        report.points.len(),
        if pruned > 0 { format!(", {pruned} pruned") } else { String::new() },
        report.launched.len(),
        report.skipped,
        report.seconds,
        report.id
    );
    s
}

fn was_launched(report: &SweepReport, index: usize) -> bool {
    report.launched.iter().any(|t| t.index == index)
}

/// Where a point's launcher output went.
fn log_of(report: &SweepReport, index: usize) -> String {
    match &report.job_id {
        Some(job) => slurm::task_output(&report.dir, job, index)
            .display()
            .to_string(),
        None => report
            .dir
            .join("logs")
            .join(format!("{index}.log"))
            .display()
            .to_string(),
    }
}
