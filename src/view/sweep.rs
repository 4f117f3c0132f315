//! Sweeps as the terminal shows them: the plan (`--dry-run`) and the summary
//! table printed when a sweep ends.

use std::fmt::Write;

use super::{duration, number, Table};
use crate::config::overrides::format_value;
use crate::sweep::launch::SweepReport;
use crate::sweep::{slurm, PointState, PointStatus, Sweep};

/// `--dry-run`: one line per point with its overrides and what a launch
/// would do with it.
pub fn sweep_plan(sweep: &Sweep, states: &[PointState]) -> String {
    let mut s = format!(
        "sweep {} ({} points) in {}\n",
        sweep.id,
        sweep.points.len(),
        sweep.dir.display()
    );
    let mut table = Table::new(["#", "OVERRIDES", "PLAN"]);
    for (p, state) in sweep.points.iter().zip(states) {
        let plan = match state.status {
            PointStatus::Pending => "run".to_string(),
            PointStatus::Completed => "skip (completed)".into(),
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
    s.push_str(&table.render());
    s
}

/// The table at the end of a sweep: every point, its swept values, status,
/// best validation IoU and duration; then the errors of points that failed.
pub fn sweep_summary(report: &SweepReport) -> String {
    let mut header = vec!["#".to_string()];
    header.extend(report.axes.iter().cloned());
    header.extend(["STATUS", "BEST VAL IOU", "DURATION", "RUN"].map(String::from));
    let mut table = Table::new(header);
    let mut problems = String::new();
    for (point, state) in &report.points {
        let mut row = vec![point.index.to_string()];
        row.extend(point.values.iter().map(|(_, v)| format_value(v)));
        row.push(state.status.as_str().to_string());
        row.push(number(state.best_val_iou()));
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
    let _ = writeln!(
        s,
        "sweep {}: {completed}/{} completed; {} launched now, {} skipped; {:.1} s; `esx ls --sweep {}` lists its runs",
        report.id,
        report.points.len(),
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
