//! `esx ls`, `esx show` and `esx export` over a store written through the library.

mod common;

use std::path::Path;

use common::{esx, fails, succeeds};
use esx::store::{NewRun, Outcome, RunWriter, SweepMembership};

fn make_run(
    root: &Path,
    name: &str,
    lr: f64,
    outcome: Option<Outcome>,
) -> (String, std::path::PathBuf) {
    let new = NewRun {
        name: name.into(),
        config_toml: format!("name = '{name}'\nlr = {lr:?}\n"),
        overrides: vec![],
        experiment: Some("experiments/x.toml".into()),
        command: vec!["esx".into(), "run".into()],
        sweep: None,
        journal: None,
    };
    let mut w = RunWriter::create(root, None, &new).unwrap();
    for step in 0..5u64 {
        w.log_scalar(step, 0, "train", "loss", 2.0 - step as f64 * 0.1)
            .unwrap();
    }
    w.log_scalar(4, 0, "val", "iou", 0.9 - lr * 100.0).unwrap();
    w.log_image(0, "seed", b"png").unwrap();
    let (id, dir) = (w.id().to_string(), w.dir().to_path_buf());
    match outcome {
        Some(o) => w.finish(o).unwrap(),
        None => {
            // Commit, then vanish without finishing: the record stays "running".
            w.flush().unwrap();
            std::mem::forget(w);
        }
    }
    (id, dir)
}

#[test]
fn ls_lists_filters_sorts_and_prints_json() {
    let root = tempfile::tempdir().unwrap();
    let (a, _) = make_run(root.path(), "alpha", 1e-3, Some(Outcome::Completed));
    let (b, _) = make_run(
        root.path(),
        "beta",
        1e-4,
        Some(Outcome::Failed("diverged".into())),
    );
    let r = root.path().to_str().unwrap();

    let out = succeeds(root.path(), &["ls", r]);
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.contains(&a) && out.contains(&b) && out.contains("BEST VAL IOU"),
        "{out}"
    );
    assert!(out.contains("completed") && out.contains("failed"), "{out}");

    let out = succeeds(
        root.path(),
        &["ls", "--runs", r, "--where", "params.lr<5e-4"],
    );
    assert!(out.contains(&b) && !out.contains(&a), "{out}");

    let out = succeeds(root.path(), &["ls", r, "--sort", "-max.val/iou", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["name"], "beta", "higher IoU first");
    assert_eq!(v[1]["status"], "completed");
    assert_eq!(v[0]["error"], "diverged");

    let err = fails(root.path(), &["ls", r, "--where", "params.lr <"]);
    assert!(err.contains("bad filter"), "{err}");
}

#[test]
fn ls_defaults_to_runs_and_reports_a_missing_root() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(dir.path(), &["ls"]);
    assert!(err.contains("runs directory runs does not exist"), "{err}");
    make_run(
        &dir.path().join("runs"),
        "x",
        1e-3,
        Some(Outcome::Completed),
    );
    let out = succeeds(dir.path(), &["ls"]);
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn ls_skips_an_unreadable_database_with_a_warning() {
    let root = tempfile::tempdir().unwrap();
    make_run(root.path(), "good", 1e-3, Some(Outcome::Completed));
    let bad = root.path().join("garbage");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("run.db"), b"this is not sqlite").unwrap();
    let out = esx(root.path()).args(["ls", "."]).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("garbage/run.db"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("good"));
}

#[test]
fn sweep_filter_lists_only_that_sweep() {
    let root = tempfile::tempdir().unwrap();
    make_run(root.path(), "loose", 1e-3, Some(Outcome::Completed));
    let mut swept = serde_json::Map::new();
    swept.insert("lr".into(), 1e-4.into());
    let new = NewRun {
        name: "member".into(),
        config_toml: "lr = 1e-4\n".into(),
        sweep: Some(SweepMembership {
            id: "sw123456".into(),
            index: 3,
            swept,
        }),
        ..Default::default()
    };
    RunWriter::create(&root.path().join("sw123456"), Some("3"), &new)
        .unwrap()
        .finish(Outcome::Completed)
        .unwrap();
    let out = succeeds(root.path(), &["ls", ".", "--sweep", "sw12"]);
    assert!(out.contains("member") && !out.contains("loose"), "{out}");
    assert!(out.contains("sw123456#3"), "{out}");
}

#[test]
fn show_prints_everything_and_marks_a_dead_running_run_crashed() {
    let root = tempfile::tempdir().unwrap();
    let (id, dir) = make_run(root.path(), "gamma", 1e-3, None);
    // Pretend the writer died: point the record at a pid that no longer exists.
    let conn = rusqlite::Connection::open(dir.join("run.db")).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    conn.execute("UPDATE run SET pid = ?1, pid_start = NULL", [dead])
        .unwrap();
    drop(conn);

    let r = root.path().to_str().unwrap();
    let out = succeeds(root.path(), &["show", &id[..5], "--runs", r]);
    assert!(out.contains("status     crashed"), "{out}");
    assert!(out.contains("train  loss") && out.contains("seed"), "{out}");
    assert!(out.contains("lr = 0.001"), "config shown: {out}");
    let out = succeeds(root.path(), &["show", dir.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["run"]["status"], "crashed");
    assert_eq!(v["images"][0]["kind"], "seed");

    let err = fails(root.path(), &["show", "nosuchrun", "--runs", r]);
    assert!(err.contains("no run matches `nosuchrun`"), "{err}");
}

#[test]
fn export_csv_and_json_for_a_run_or_a_root() {
    let root = tempfile::tempdir().unwrap();
    let (a, _) = make_run(root.path(), "a", 1e-3, Some(Outcome::Completed));
    make_run(root.path(), "b", 1e-3, Some(Outcome::Completed));
    let r = root.path().to_str().unwrap();
    let csv = succeeds(root.path(), &["export", &a, "--runs", r]);
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(lines[0], "run,step,epoch,split,key,value,wall");
    assert_eq!(lines.len(), 1 + 6);
    assert!(
        lines[1].starts_with(&format!("{a},0,0,train,loss,2,")),
        "{}",
        lines[1]
    );

    let out_file = root.path().join("all.json");
    succeeds(
        root.path(),
        &[
            "export",
            r,
            "--format",
            "json",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 12);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|row| row["run"] == a.as_str()));
}
