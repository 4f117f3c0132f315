//! Races, faults and hostile input, as an unlucky or hostile user meets
//! them (issue 18): two processes on one run or sweep, commands with nothing
//! to do, inputs that would panic or exhaust memory, bad values in images,
//! full disks, and the messages all of these give.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fails, succeeds, write_files};
use esx::store::query::{list_runs, metrics, read_run};
use esx::store::RunStatus;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("esx")
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .env_remove("ESX_RUNS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("esx starts")
}

/// (exit status, stderr) of a finished child.
fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn tiny(dir: &Path) {
    write_files(dir, &[("tiny.toml", &common::tiny_experiment(1, 64, 0))]);
}

fn only_run(root: &Path) -> PathBuf {
    let runs: Vec<_> = list_runs(root)
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(runs.len(), 1, "one run under {}", root.display());
    runs[0].dir.clone()
}

/// Step numbers of a run's recorded training losses, in order.
fn steps(run_dir: &Path) -> Vec<i64> {
    metrics(run_dir, Some(&["loss"]))
        .unwrap()
        .iter()
        .filter(|m| m.split == "step")
        .map(|m| m.step)
        .collect()
}

/// A run of 3 epochs × 12 steps interrupted with Ctrl-C in its second epoch.
fn interrupted_run(dir: &Path) -> PathBuf {
    tiny(dir);
    let mut child = spawn(
        dir,
        &[
            "run",
            "-q",
            "tiny.toml",
            "epochs=3",
            "train.steps_per_epoch=12",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let run_dir = loop {
        assert!(Instant::now() < deadline, "the run never reached step 14");
        let found = list_runs(&dir.join("runs"))
            .ok()
            .and_then(|r| r.into_iter().filter_map(Result::ok).next());
        if let Some(r) = found {
            if steps(&r.dir).iter().any(|&s| s >= 14) {
                break r.dir;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(read_run(&run_dir).unwrap().status, RunStatus::Interrupted);
    run_dir
}

#[test]
fn two_resumes_started_together_train_the_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = interrupted_run(dir.path());
    let id = read_run(&run_dir).unwrap().id;
    let a = spawn(dir.path(), &["run", "-q", "--resume", &id]);
    let b = spawn(dir.path(), &["run", "-q", "--resume", &id]);
    let (a, b) = (finish(a), finish(b));
    let (won, lost) = if a.0 == Some(0) { (a, b) } else { (b, a) };
    assert_eq!(won.0, Some(0), "one resume trains: {won:?} / {lost:?}");
    assert_eq!(lost.0, Some(1), "the other is refused: {lost:?}");
    assert_eq!(lost.1.lines().count(), 1, "{}", lost.1);
    assert!(
        lost.1
            .contains(&format!("run {id} is being resumed by pid")),
        "{}",
        lost.1
    );
    assert_eq!(
        steps(&run_dir),
        (1..=36).collect::<Vec<_>>(),
        "every step once"
    );
    assert_eq!(read_run(&run_dir).unwrap().status, RunStatus::Completed);
}

#[test]
fn two_sweeps_of_one_command_run_each_point_once() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path());
    let args = ["sweep", "tiny.toml", "lr=1e-3,5e-4", "--jobs", "1"];
    let a = spawn(dir.path(), &args);
    let b = spawn(dir.path(), &args);
    let (a, b) = (finish(a), finish(b));
    let (won, lost) = if a.0 == Some(0) { (a, b) } else { (b, a) };
    assert_eq!(won.0, Some(0), "{won:?} / {lost:?}");
    assert_eq!(lost.0, Some(1), "{lost:?}");
    assert!(lost.1.contains("is being run by pid"), "{}", lost.1);
    let runs: Vec<_> = list_runs(&dir.path().join("runs"))
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(runs.len(), 2, "two points, two runs");
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
}

#[test]
fn a_resume_that_cannot_start_leaves_the_run_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = interrupted_run(dir.path());
    let id = read_run(&run_dir).unwrap().id;
    let before = steps(&run_dir);
    // A file where the dataset was: the resume fails before it trains.
    std::fs::rename(dir.path().join("data"), dir.path().join("elsewhere")).unwrap();
    write_files(dir.path(), &[("data/tiny", "not a dataset")]);
    let err = fails(dir.path(), &["run", "--resume", &id]);
    assert!(err.contains("data/tiny"), "{err}");
    let info = read_run(&run_dir).unwrap();
    assert_eq!(
        info.status,
        RunStatus::Interrupted,
        "still interrupted, not failed"
    );
    assert_eq!(steps(&run_dir), before, "nothing recorded was lost");
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    std::fs::rename(dir.path().join("elsewhere"), dir.path().join("data")).unwrap();
    succeeds(dir.path(), &["run", "-q", "--resume", &id]);
    assert_eq!(steps(&run_dir), (1..=36).collect::<Vec<_>>());
    assert_eq!(only_run(&dir.path().join("runs")), run_dir);
}
