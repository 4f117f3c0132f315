//! `esx bench store`: metric ingest through the batched writer, `esx ls` over
//! many runs, and `esx config` end to end.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rayon::prelude::*;

use super::{median_time, Figure};
use crate::store::journal::JournalMode;
use crate::store::query::list_runs;
use crate::store::{NewRun, Outcome, RunWriter, StoreError};

pub struct StoreBench {
    /// Scalars to ingest.
    pub rows: u64,
    /// Runs to list.
    pub runs: usize,
    /// The esx binary, for the end-to-end figures.
    pub exe: std::path::PathBuf,
}

pub fn run(opts: &StoreBench) -> Result<Vec<Figure>, StoreError> {
    let scratch = tempfile::tempdir().map_err(|e| StoreError::Io {
        path: std::env::temp_dir(),
        source: e,
    })?;
    let mut figures = Vec::new();
    for journal in [JournalMode::Wal, JournalMode::Delete] {
        figures.push(ingest(scratch.path(), opts.rows, journal)?);
    }
    for journal in [JournalMode::Wal, JournalMode::Delete] {
        figures.push(per_step(scratch.path(), opts.rows / 20, journal)?);
    }
    figures.extend(listing(&scratch.path().join("many"), opts.runs, &opts.exe)?);
    figures.push(config_end_to_end(scratch.path(), &opts.exe));
    Ok(figures)
}

fn new_run(name: &str) -> NewRun {
    NewRun {
        name: name.into(),
        config_toml: crate::config::Config::default_toml(),
        command: vec!["esx".into(), "bench".into()],
        ..Default::default()
    }
}

/// Scalars as fast as they come: the writer batches them (a transaction
/// per `FLUSH_ROWS` rows or half second).
fn ingest(root: &Path, rows: u64, journal: JournalMode) -> Result<Figure, StoreError> {
    let keys = ["loss", "inst", "var", "seed"];
    let new = NewRun {
        journal: Some(journal),
        ..new_run("ingest")
    };
    let mut w = RunWriter::create(root, None, &new)?;
    let start = Instant::now();
    for i in 0..rows {
        w.log_scalar(
            i / 4,
            (i / 4000) as u32,
            "train",
            keys[(i % 4) as usize],
            i as f64 * 1e-3,
        )?;
    }
    w.finish(Outcome::Completed)?;
    let secs = start.elapsed().as_secs_f64();
    Ok(Figure {
        name: format!(
            "metric ingest, {} journal (batched writer)",
            journal.as_str()
        ),
        value: rows as f64 / secs,
        unit: "rows/s".into(),
        target: Some(match journal {
            JournalMode::Wal => "≥ 200000".into(),
            JournalMode::Delete => "≥ half of wal's".into(),
        }),
        detail: format!("{rows} rows in {secs:.2} s, committed"),
    })
}

/// The worst case for a journal: one committed transaction per training
/// step of four scalars (what a caller flushing every step would cost).
fn per_step(root: &Path, rows: u64, journal: JournalMode) -> Result<Figure, StoreError> {
    let new = NewRun {
        journal: Some(journal),
        ..new_run("per-step")
    };
    let mut w = RunWriter::create(root, None, &new)?;
    let start = Instant::now();
    for i in 0..rows {
        w.log_scalar(i / 4, 0, "train", "loss", i as f64)?;
        if i % 4 == 3 {
            w.flush()?;
        }
    }
    w.finish(Outcome::Completed)?;
    let secs = start.elapsed().as_secs_f64();
    let commits = rows / 4;
    Ok(Figure {
        name: format!("commit per step, {} journal", journal.as_str()),
        value: commits as f64 / secs,
        unit: "commits/s".into(),
        target: None,
        detail: format!(
            "{commits} commits of 4 rows in {secs:.2} s (esx commits at most every 0.5 s)"
        ),
    })
}

fn listing(root: &Path, runs: usize, exe: &Path) -> Result<Vec<Figure>, StoreError> {
    (0..runs).into_par_iter().try_for_each(|i| {
        let mut w = RunWriter::create(root, None, &new_run(&format!("run-{i}")))?;
        for step in 0..100u64 {
            w.log_scalar(step, 0, "train", "loss", 1.0 / (step + 1) as f64)?;
        }
        w.log_scalar(99, 0, "val", "iou", (i % 100) as f64 / 100.0)?;
        w.finish(Outcome::Completed)
    })?;
    let in_process = median_time(5, || {
        let listed = list_runs(root).expect("listing the bench runs");
        let ok: Vec<_> = listed.into_iter().filter_map(Result::ok).collect();
        assert_eq!(ok.len(), runs);
        let _ = crate::view::runs_table(&ok);
    });
    let end_to_end = median_time(5, || {
        let out = Command::new(exe)
            .arg("ls")
            .arg(root)
            .output()
            .expect("esx ls runs");
        assert!(out.status.success(), "esx ls failed");
    });
    Ok(vec![
        Figure {
            name: format!("ls over {runs} runs (library)"),
            value: in_process.as_secs_f64(),
            unit: "s".into(),
            target: None,
            detail: "scan, open, read, render; median of 5".into(),
        },
        Figure {
            name: format!("esx ls over {runs} runs"),
            value: end_to_end.as_secs_f64(),
            unit: "s".into(),
            target: Some("< 1 s".into()),
            detail: "the binary end to end; median of 5".into(),
        },
    ])
}

fn config_end_to_end(scratch: &Path, exe: &Path) -> Figure {
    let dir = scratch.join("experiments");
    for (path, text) in [
        ("data/hela.toml", "[data]\nroot = 'data/DIC-C2DH-HeLa'\ncrop_size = 256\n"),
        ("model/erfnet.toml", "[model]\nn_sigma = 2\nsigma_init = 1.0\n"),
        ("loss/embedseg.toml", "[loss]\nw_var = 10.0\n"),
        ("train/embedseg.toml", "[train]\nweight_decay = 1e-4\n"),
        (
            "hela_base.toml",
            "defaults = ['data/hela', 'model/erfnet', 'loss/embedseg', 'train/embedseg']\nname = 'hela'\nepochs = 200\n",
        ),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("bench scratch dir");
        std::fs::write(&p, text).expect("bench scratch file");
    }
    let file = dir.join("hela_base.toml");
    let t = median_time(21, || {
        let out = Command::new(exe)
            .arg("config")
            .arg(&file)
            .arg("+lr=1e-4")
            .output()
            .expect("esx config runs");
        assert!(out.status.success(), "esx config failed");
    });
    Figure {
        name: "esx config end to end".into(),
        value: t.as_secs_f64() * 1e3,
        unit: "ms".into(),
        target: Some("< 20 ms".into()),
        detail: "process start to exit, 4 groups + an override; median of 21".into(),
    }
}
