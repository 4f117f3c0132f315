//! `esx run` as a user drives it, on tiny synthetic datasets: everything is
//! recorded, runs are deterministic, Ctrl-C then --resume gives exactly the
//! uninterrupted run, and failures end the run cleanly.

mod common;

use std::path::Path;

use common::{esx, fails, newest_run, succeeds, train_until_step, write_files};
use esx::store::query::{events, metrics, read_run};
use esx::store::RunStatus;

fn run_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&succeeds(dir, &all)).expect("esx run --json prints JSON")
}

/// (step, loss) of every training step, and every validation IoU.
fn losses(run_dir: &Path) -> (Vec<(i64, f64)>, Vec<f64>) {
    let m = metrics(run_dir, None).unwrap();
    let steps = m
        .iter()
        .filter(|r| r.split == "step" && r.key == "loss")
        .map(|r| (r.step, r.value.unwrap()))
        .collect();
    let ious = m
        .iter()
        .filter(|r| r.split == "val" && r.key == "iou")
        .map(|r| r.value.unwrap())
        .collect();
    (steps, ious)
}

#[test]
fn a_run_records_every_loss_checkpoints_and_its_split() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tiny.toml", &tiny())]);
    let r = run_json(dir.path(), &["tiny.toml"]);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["steps"], 6);
    let run_dir = dir.path().join(r["dir"].as_str().unwrap());
    let info = read_run(&run_dir).unwrap();
    for (split, key, count) in [
        ("step", "loss", 6),
        ("step", "inst", 6),
        ("step", "var", 6),
        ("step", "seed", 6),
        ("train", "loss", 2),
        ("train", "lr", 2),
        ("train", "images_per_s", 2),
        ("val", "loss", 2),
        ("val", "iou", 2),
    ] {
        let s = info
            .summary(split, key)
            .unwrap_or_else(|| panic!("{split}/{key} recorded"));
        assert_eq!(s.count, count, "{split}/{key}");
    }
    assert!(run_dir.join("checkpoints/last.safetensors").is_file());
    assert!(run_dir.join("checkpoints/best.safetensors").is_file());
    let split = events(&run_dir)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "split")
        .unwrap();
    let split: serde_json::Value = serde_json::from_str(&split.detail).unwrap();
    assert_eq!(
        split["val"].as_array().unwrap().len(),
        1,
        "one of four frames held out"
    );
    assert_eq!(info.params["epochs"].value, "2");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tiny.toml", &tiny())]);
    let a = run_json(dir.path(), &["tiny.toml"]);
    let b = run_json(dir.path(), &["tiny.toml"]);
    let la = losses(&dir.path().join(a["dir"].as_str().unwrap()));
    let lb = losses(&dir.path().join(b["dir"].as_str().unwrap()));
    assert_eq!(la, lb);
    let c = run_json(dir.path(), &["tiny.toml", "seed=6"]);
    assert_ne!(la, losses(&dir.path().join(c["dir"].as_str().unwrap())));
}

#[test]
fn ctrl_c_then_resume_gives_exactly_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tiny.toml", &tiny())]);
    let args = ["tiny.toml", "epochs=3", "train.steps_per_epoch=12"];
    let reference = run_json(dir.path(), &args);
    let reference = losses(&dir.path().join(reference["dir"].as_str().unwrap()));
    assert_eq!(reference.0.len(), 36);

    let runs = dir.path().join("interrupted-runs");
    // Interrupt in the middle of the second epoch.
    let (mut child, run_dir) = train_until_step(dir.path(), &runs, &args, 16);
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "an interrupted run exits with 130"
    );
    let info = read_run(&run_dir).unwrap();
    assert_eq!(info.status, RunStatus::Interrupted);
    let stopped_at = losses(&run_dir).0.len();
    assert!(
        stopped_at < 36,
        "interrupted before the end ({stopped_at} steps)"
    );

    let resumed = run_json(
        dir.path(),
        &["--resume", &info.id, "--runs", runs.to_str().unwrap()],
    );
    assert_eq!(resumed["status"], "completed");
    let after = losses(&run_dir);
    let steps: Vec<i64> = after.0.iter().map(|s| s.0).collect();
    assert_eq!(
        steps,
        (1..=36).collect::<Vec<_>>(),
        "every step once, no duplicates"
    );
    assert_eq!(
        after, reference,
        "resuming reproduces the uninterrupted run exactly"
    );
    assert_eq!(read_run(&run_dir).unwrap().status, RunStatus::Completed);
}

/// A run on a host that died: its record says running, from another host.
/// While its heartbeat is fresh it is running (and not resumed from here);
/// once the heartbeat is stale it is crashed, and resumed from this host.
#[test]
fn a_run_from_another_host_lives_by_its_heartbeat_and_resumes_here_once_stale() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tiny.toml", &tiny())]);
    let args = ["tiny.toml", "epochs=3", "train.steps_per_epoch=12"];
    let runs = dir.path().join("runs");
    let (mut child, run_dir) = train_until_step(dir.path(), &runs, &args, 16);
    // SAFETY: plain kill(2) on our own child: the node dies.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let fake = |age: f64| {
        let conn = rusqlite::Connection::open(run_dir.join("run.db")).unwrap();
        conn.execute(
            "UPDATE run SET host = 'node-elsewhere', pid = 4242, heartbeat = ?1",
            [esx::store::provenance::now() - age],
        )
        .unwrap();
    };
    let runs_arg = runs.to_str().unwrap();
    fake(20.0);
    let ls = succeeds(dir.path(), &["ls", runs_arg]);
    let row = ls.lines().nth(1).unwrap();
    assert!(
        row.contains("running") && row.contains("node-elsewhere"),
        "{ls}"
    );
    let show = succeeds(dir.path(), &["show", run_dir.to_str().unwrap()]);
    assert!(
        show.lines()
            .any(|l| l.starts_with("heartbeat") && l.ends_with("s ago")),
        "{show}"
    );
    let id = read_run(&run_dir).unwrap().id;
    let err = fails(dir.path(), &["run", "--resume", &id, "--runs", runs_arg]);
    assert!(
        err.contains("it is running on node-elsewhere (pid 4242"),
        "{err}"
    );
    assert_eq!(read_run(&run_dir).unwrap().host, "node-elsewhere");

    fake(esx::store::heartbeat::STALE_AFTER + 60.0);
    let ls = succeeds(dir.path(), &["ls", runs_arg]);
    assert!(ls.lines().nth(1).unwrap().contains("crashed"), "{ls}");
    let resumed = run_json(dir.path(), &["--resume", &id, "--runs", runs_arg]);
    assert_eq!(resumed["status"], "completed");
    let steps: Vec<i64> = losses(&run_dir).0.iter().map(|s| s.0).collect();
    assert_eq!(steps, (1..=36).collect::<Vec<_>>(), "every step once");
    let info = read_run(&run_dir).unwrap();
    assert_eq!(info.host, esx::store::provenance::hostname());
    assert_eq!(info.status, RunStatus::Completed);
}

#[test]
fn resuming_a_completed_or_unknown_run_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tiny.toml", &tiny())]);
    let err = fails(dir.path(), &["run", "--resume", "nosuchrun"]);
    assert!(
        err.contains("no run matches `nosuchrun`") || err.contains("runs directory"),
        "{err}"
    );
}

#[test]
fn a_non_finite_loss_fails_the_run_naming_step_and_term() {
    // An absurd learning rate: Adam's first step moves every weight by
    // ~1e38, and the second step's loss is no longer a number. (Images with
    // NaN pixels never get this far: they are refused when read.)
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tiny.toml", &tiny())]);
    let out = esx(dir.path())
        .args(["run", "tiny.toml", "-q", "lr=1e38"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let err = stderr.lines().last().unwrap();
    assert!(
        err.starts_with("esx: error: the loss became") && err.contains("at step 2"),
        "{err}"
    );
    let run = newest_run(&dir.path().join("runs")).unwrap();
    let info = read_run(&run).unwrap();
    assert_eq!(info.status, RunStatus::Failed);
    assert!(info.error.unwrap().contains("at step 2"));
}

#[test]
fn missing_data_fails_the_run_and_cuda_needs_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[(
            "real.toml",
            "epochs = 1\n[data]\nroot = 'data/DIC-C2DH-HeLa'\n",
        )],
    );
    let err = fails(dir.path(), &["run", "real.toml", "-q"]);
    assert!(err.contains("data/DIC-C2DH-HeLa does not exist"), "{err}");
    let run = newest_run(&dir.path().join("runs")).unwrap();
    assert_eq!(
        read_run(&run).unwrap().status,
        RunStatus::Failed,
        "recorded as failed, not left running"
    );

    let err = fails(dir.path(), &["run", "real.toml", "device=cuda:0"]);
    if cfg!(feature = "cuda") {
        assert!(err.contains("cuda"), "{err}");
    } else {
        assert!(
            err.contains("built without CUDA") && err.contains("--features cuda"),
            "{err}"
        );
    }
}

fn tiny() -> String {
    common::tiny_experiment(1, 64, 0)
}
