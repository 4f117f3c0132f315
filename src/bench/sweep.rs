//! `esx bench sweep`: what the local launcher costs. A sweep of short runs on
//! a tiny synthetic dataset, `jobs` at a time, through the real binary; the
//! wall time is set against the runs' own time, and the per-run overhead is
//! the slot time no child used.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use super::Figure;

pub struct SweepBench {
    pub runs: usize,
    pub jobs: usize,
    /// Training steps per run.
    pub steps: usize,
    pub exe: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepBenchError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("esx sweep failed: {0}")]
    Sweep(String),
}

/// A tiny experiment on a synthetic dataset (4 frames of 64², 32² crops)
/// whose runs take about a second; the sweep tests use it too.
pub fn tiny_experiment(epochs: u32, steps: usize) -> String {
    format!(
        r#"name = "tiny-sweep"
epochs = {epochs}
batch_size = 2

[data]
root = "data/tiny"
sequences = ["01"]
crop_size = 32
val_fraction = 0.25

[data.synthetic]
kind = "fluo"
sequences = 1
frames = 4
size = 64
seed = 2

[train]
steps_per_epoch = {steps}

[log]
vis_every = 0
"#
    )
}

pub(crate) fn sweep(
    dir: &Path,
    exe: &Path,
    args: &[String],
) -> Result<serde_json::Value, SweepBenchError> {
    let out = Command::new(exe)
        .current_dir(dir)
        .arg("sweep")
        .args(args)
        .args(["--json", "--quiet"])
        .env_remove("ESX_RUNS")
        .output()?;
    if !out.status.success() {
        return Err(SweepBenchError::Sweep(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| SweepBenchError::Sweep(e.to_string()))
}

pub fn run(opts: &SweepBench) -> Result<Vec<Figure>, SweepBenchError> {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    std::fs::write(dir.join("bench.toml"), tiny_experiment(1, opts.steps))?;
    // Warm-up: synthesises and prepares the data, so the timed sweep only trains.
    sweep(
        dir,
        &opts.exe,
        &["bench.toml".into(), "seed=1000,1001".into()],
    )?;

    let points = format!("seed=range({})", opts.runs);
    let plan_start = Instant::now();
    let out = Command::new(&opts.exe)
        .current_dir(dir)
        .args(["sweep", "bench.toml", &points, "--dry-run"])
        .output()?;
    let plan = plan_start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(SweepBenchError::Sweep(
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }

    let start = Instant::now();
    let report = sweep(
        dir,
        &opts.exe,
        &[
            "bench.toml".into(),
            points,
            "--jobs".into(),
            opts.jobs.to_string(),
        ],
    )?;
    let wall = start.elapsed().as_secs_f64();
    let children: f64 = report["outcomes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["seconds"].as_f64())
        .sum();
    let recorded: f64 = report["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let run = &p[1]["run"];
            Some(run["ended"].as_f64()? - run["created"].as_f64()?)
        })
        .sum();
    let n = opts.runs as f64;
    let jobs = opts.jobs as f64;
    let completed = report["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p[1]["status"] == "completed")
        .count();
    let detail = format!(
        "{} runs of {} steps, --jobs {}, {completed} completed",
        opts.runs, opts.steps, opts.jobs
    );
    Ok(vec![
        Figure {
            name: "sweep wall time".into(),
            value: wall,
            unit: "s".into(),
            target: None,
            detail: format!(
                "{detail}; Σ run time {recorded:.1} s recorded, {children:.1} s as processes"
            ),
        },
        Figure {
            name: "wall ÷ (Σ run time ÷ jobs)".into(),
            value: wall / (recorded / jobs),
            unit: "×".into(),
            target: Some("≤ 1.15".into()),
            detail: "run time as each run records it (start to end of training)".into(),
        },
        Figure {
            name: "wall ÷ (Σ process time ÷ jobs)".into(),
            value: wall / (children / jobs),
            unit: "×".into(),
            target: None,
            detail: "process time: spawn to exit, as the launcher sees it".into(),
        },
        Figure {
            name: "launcher overhead per run".into(),
            value: (wall * jobs - children).max(0.0) / n * 1e3,
            unit: "ms".into(),
            target: Some("< 100 ms".into()),
            detail: "job-slot time no child process used, planning included".into(),
        },
        Figure {
            name: "planning (compose every point)".into(),
            value: plan / n * 1e3,
            unit: "ms/run".into(),
            target: None,
            detail: format!("esx sweep --dry-run end to end, {} points", opts.runs),
        },
    ])
}
