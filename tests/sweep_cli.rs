//! `esx sweep` with the local launcher, driven as a user drives it: grids and
//! samples, the sweep record, failure isolation, resuming, Ctrl-C.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{esx, fails, succeeds, write_files};
use esx::store::query::{list_runs, metrics, RunInfo};
use esx::store::RunStatus;

/// A tiny experiment that sweeps lr over two values in its file.
fn experiment(epochs: u32, steps: u32) -> String {
    esx::bench::sweep::tiny_experiment(epochs, steps as usize) + "\n[sweep]\nlr = [1e-3, 1e-4]\n"
}

fn setup(epochs: u32, steps: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tiny.toml", &experiment(epochs, steps))]);
    dir
}

fn runs(root: &Path) -> Vec<RunInfo> {
    let mut runs: Vec<RunInfo> = list_runs(root)
        .map(|v| v.into_iter().filter_map(Result::ok).collect())
        .unwrap_or_default();
    runs.sort_by_key(|r| (r.sweep_index, r.created.to_bits()));
    runs
}

fn sweep_json(dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = esx(dir)
        .arg("sweep")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from esx sweep {args:?} ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

#[test]
fn dry_run_plans_the_grid_without_recording_anything() {
    let dir = setup(1, 2);
    let out = succeeds(
        dir.path(),
        &[
            "sweep",
            "tiny.toml",
            "seed=1,2",
            "model.sigma_init=range(0.5,2,0.5)",
            "--dry-run",
        ],
    );
    // 2 (file) × 2 × 3 points, the last axis fastest.
    let rows: Vec<&str> = out.lines().skip(3).collect();
    assert_eq!(rows.len(), 12, "{out}");
    assert!(
        rows[0].contains("lr=0.001 seed=1 model.sigma_init=0.5"),
        "{out}"
    );
    assert!(rows[1].contains("model.sigma_init=1.0"), "{out}");
    assert!(
        rows[11].contains("lr=0.0001 seed=2 model.sigma_init=1.5"),
        "{out}"
    );
    assert!(rows.iter().all(|r| r.ends_with("run")));
    assert!(
        !dir.path().join("runs").exists(),
        "a dry run records nothing"
    );

    // The command line replaces the file's axis; a plain value fixes it.
    let out = succeeds(dir.path(), &["sweep", "tiny.toml", "lr=1,2,3", "--dry-run"]);
    assert_eq!(out.lines().count(), 6, "{out}");
    let out = succeeds(
        dir.path(),
        &["sweep", "tiny.toml", "lr=0.01", "seed=3,4", "--dry-run"],
    );
    assert!(
        out.contains("0  seed=3") && out.lines().count() == 5,
        "{out}"
    );

    // Random search: N points, the same for the same seed.
    let sample = |seed: &str| {
        succeeds(
            dir.path(),
            &[
                "sweep",
                "tiny.toml",
                "lr=loguniform(1e-5,1e-2)",
                "model.sigma_init=uniform(0.5,1.5)",
                "--sample",
                "5",
                "--seed",
                seed,
                "--dry-run",
            ],
        )
    };
    let a = sample("3");
    assert_eq!(a.lines().count(), 8, "{a}");
    assert_eq!(a, sample("3"));
    assert_ne!(a, sample("4"));
}

#[test]
fn bad_sweeps_fail_on_one_line_before_anything_runs() {
    let dir = setup(1, 2);
    let err = fails(dir.path(), &["sweep", "tiny.toml", "lr=uniform(0.1,1)"]);
    assert!(
        err.contains("lr=uniform(0.1,1.0)") && err.contains("method = \"random\""),
        "{err}"
    );
    let err = fails(dir.path(), &["sweep", "tiny.toml", "sed=1,2"]);
    assert!(
        err.contains("point 0") && err.contains("did you mean `seed`"),
        "{err}"
    );
    let err = fails(dir.path(), &["sweep", "tiny.toml", "seed=1,x"]);
    assert!(
        err.contains("point 1 (lr=0.001 seed=x)") && err.contains("non-negative integer"),
        "{err}"
    );
    let err = fails(dir.path(), &["sweep", "tiny.toml", "seed=range(0,1,0)"]);
    assert!(err.contains("non-zero step"), "{err}");
    let err = fails(dir.path(), &["sweep", "tiny.toml", "--partition", "gpu"]);
    assert!(err.contains("--launcher slurm"), "{err}");
    write_files(dir.path(), &[("plain.toml", "lr = 1e-3\n")]);
    let err = fails(dir.path(), &["sweep", "plain.toml"]);
    assert!(err.contains("nothing to sweep"), "{err}");
    write_files(dir.path(), &[("scalar.toml", "[sweep]\nlr = 0.1\n")]);
    let err = fails(dir.path(), &["sweep", "scalar.toml"]);
    assert!(
        err.contains("sweep.\"lr\"") && err.contains("single value"),
        "{err}"
    );
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn a_grid_runs_in_parallel_records_its_points_and_resumes_by_rerunning() {
    let dir = setup(1, 2);
    let (code, report) = sweep_json(dir.path(), &["tiny.toml", "seed=1,2", "--jobs", "2"]);
    assert_eq!(code, Some(0), "{report:#}");
    let id = report["id"].as_str().unwrap().to_string();
    let sweep_dir = dir.path().join("runs").join(&id);
    assert!(sweep_dir.join("sweep.db").is_file());
    let recorded = runs(&sweep_dir);
    assert_eq!(recorded.len(), 4);
    for (i, r) in recorded.iter().enumerate() {
        assert_eq!(r.status, RunStatus::Completed);
        assert_eq!(r.sweep_id.as_deref(), Some(id.as_str()));
        assert_eq!(r.sweep_index, Some(i as i64));
        let swept = r.swept.as_ref().unwrap();
        let lr = if i < 2 { 1e-3 } else { 1e-4 };
        assert_eq!(swept["lr"].as_f64(), Some(lr));
        assert_eq!(swept["seed"].as_i64(), Some(1 + (i as i64 % 2)));
        assert_eq!(
            r.params["lr"].num,
            Some(lr),
            "the run's config has its point's value"
        );
        assert!(r
            .dir
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("{i}-")));
    }
    // Two at once: the runs overlap in time.
    assert!(recorded[1].created < recorded[0].ended.unwrap());

    let listed = succeeds(dir.path(), &["ls", "--sweep", &id[..4]]);
    assert_eq!(listed.lines().count(), 5, "{listed}");
    let err = common::fails(dir.path(), &["ls", "--sweep", "zzzz"]);
    assert!(err.contains("no runs of sweep `zzzz` under runs"), "{err}");

    // The same command again: the same sweep, nothing to run.
    let (code, again) = sweep_json(dir.path(), &["tiny.toml", "seed=1,2", "--jobs", "2"]);
    assert_eq!(code, Some(0));
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["launched"].as_array().unwrap().len(), 0);
    assert_eq!(again["skipped"], 4);
    assert_eq!(runs(&sweep_dir).len(), 4);

    // The human summary: one row per point, with the swept values.
    let out = succeeds(dir.path(), &["sweep", "tiny.toml", "seed=1,2"]);
    assert!(out.starts_with("#  lr      seed  STATUS"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("completed  ")).count(),
        4,
        "{out}"
    );
}

#[test]
fn a_failing_point_does_not_stop_the_others_and_runs_again_on_resume() {
    let dir = setup(1, 2);
    let args = [
        "tiny.toml",
        "lr=1e-3",
        r#"data.sequences=["01"],["07"],["01"]"#,
        "--jobs",
        "2",
    ];
    let (code, report) = sweep_json(dir.path(), &args);
    assert_eq!(code, Some(1), "a failed point makes the sweep fail");
    let id = report["id"].as_str().unwrap();
    let states: Vec<&str> = report["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1]["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["completed", "failed", "completed"]);
    let out = esx(dir.path()).args(["sweep"]).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("#1 failed: sequence folder data/tiny/07 does not exist"),
        "{text}"
    );
    // That second invocation ran only point 1 again: 4 runs in all.
    let all = runs(&dir.path().join("runs").join(id));
    assert_eq!(all.len(), 4);
    assert_eq!(all.iter().filter(|r| r.sweep_index == Some(1)).count(), 2);
    assert!(all.iter().all(|r| r.status != RunStatus::Running));
}

/// Runs of the sweep that have trained at least one step.
fn started(root: &Path) -> Vec<PathBuf> {
    runs(root)
        .into_iter()
        .filter(|r| metrics(&r.dir, Some(&["loss"])).is_ok_and(|m| !m.is_empty()))
        .map(|r| r.dir)
        .collect()
}

#[test]
fn ctrl_c_stops_the_runs_cleanly_and_the_same_command_resumes_them() {
    let dir = setup(3, 20);
    let args = ["sweep", "tiny.toml", "seed=1,2", "--jobs", "2", "--json"];
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("esx"))
        .current_dir(dir.path())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let root = dir.path().join("runs");
    while started(&root).len() < 2 {
        assert!(Instant::now() < deadline, "two runs never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child (the launcher only, as `kill -INT` would).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["interrupted"], true);
    let before = runs(&root);
    assert_eq!(before.len(), 2, "the queued points were not started");
    assert!(before.iter().all(|r| r.status == RunStatus::Interrupted));

    let (code, report) = sweep_json(dir.path(), &args[1..5]);
    assert_eq!(code, Some(0), "{report:#}");
    let after = runs(&root);
    assert_eq!(after.len(), 4);
    for r in &before {
        let resumed = after
            .iter()
            .find(|a| a.id == r.id)
            .expect("resumed in place");
        assert_eq!(resumed.status, RunStatus::Completed);
        let steps = common::recorded_steps(&resumed.dir);
        assert_eq!(steps, (1..=60).collect::<Vec<_>>(), "each step once");
    }
}

#[test]
fn gpus_this_machine_lacks_are_refused_before_anything_runs() {
    let dir = setup(1, 2);
    let out = esx(dir.path())
        .args(["sweep", "tiny.toml", "--jobs", "2", "--gpus", "0,1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    if cfg!(feature = "cuda") {
        assert!(err.contains("--gpus 0,1: this machine has"), "{err}");
    } else {
        assert!(
            err.contains("--gpus 0,1: this esx was built without CUDA"),
            "{err}"
        );
    }
    assert!(
        !dir.path().join("runs").exists(),
        "nothing was recorded: {:?}",
        std::fs::read_dir(dir.path().join("runs")).map(|d| d.count())
    );
}

/// Points that ended while no launcher was there to record them (it was
/// killed; its runs went on) get their results in sweep.db when the sweep
/// is run again (issue 33 item 11).
#[test]
fn results_missed_while_the_launcher_was_dead_are_recorded_later() {
    let dir = setup(1, 2);
    let (code, report) = sweep_json(dir.path(), &["tiny.toml"]);
    assert_eq!(code, Some(0), "{report:#}");
    let root = dir.path().join("runs");
    let sweep_dir = runs(&root)[0].dir.parent().unwrap().to_path_buf();
    let db = sweep_dir.join("sweep.db");
    let count = || -> i64 {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(), 2);
    // As a launcher killed before it recorded them leaves sweep.db.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM results", [])
        .unwrap();
    let (code, report) = sweep_json(dir.path(), &["tiny.toml"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(
        report["launched"].as_array().unwrap().len(),
        0,
        "{report:#}"
    );
    assert_eq!(count(), 2, "both results recorded again");
    let statuses: Vec<String> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT status FROM results ORDER BY idx")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(statuses, ["completed", "completed"]);
}
