//! Writer → reader round trips.

use super::filter::{sort_runs, Expr};
use super::query::{events, image_png, images, last_step, list_runs, metrics, read_run};
use super::select::resolve_run;
use super::{NewRun, Outcome, RunStatus, RunWriter, StoreError};

fn new_run(name: &str, lr: f64) -> NewRun {
    NewRun {
        name: name.into(),
        config_toml: format!("name = '{name}'\nlr = {lr:?}\n[model]\nn_sigma = 2\n"),
        overrides: vec![format!("lr={lr}")],
        experiment: Some("e.toml".into()),
        command: vec!["esx".into(), "run".into(), "e.toml".into()],
        sweep: None,
        journal: None,
    }
}

#[test]
fn everything_written_reads_back() {
    let root = tempfile::tempdir().unwrap();
    let mut w = RunWriter::create(root.path(), None, &new_run("a", 1e-3)).unwrap();
    for step in 0..10u64 {
        w.log_scalar(step, 0, "train", "loss", 1.0 / (step + 1) as f64)
            .unwrap();
    }
    w.log_scalar(10, 0, "train", "loss", f64::NAN).unwrap();
    w.log_scalar(9, 0, "val", "iou", 0.5).unwrap();
    w.log_image(0, "seed", b"\x89PNG fake").unwrap();
    w.log_event("checkpoint", "last.safetensors").unwrap();
    let dir = w.dir().to_path_buf();
    let id = w.id().to_string();
    w.finish(Outcome::Completed).unwrap();

    let run = read_run(&dir).unwrap();
    assert_eq!((run.id.as_str(), run.name.as_str()), (id.as_str(), "a"));
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.params["lr"].num, Some(1e-3));
    assert_eq!(run.params["model.n_sigma"].value, "2");
    assert_eq!(run.overrides, vec!["lr=0.001"]);
    let loss = run.summary("train", "loss").unwrap();
    assert_eq!(
        (loss.count, loss.last, loss.min, loss.max),
        (11, None, Some(0.1), Some(1.0))
    );
    let m = metrics(&dir, Some(&["loss"])).unwrap();
    assert_eq!(m.len(), 11);
    assert_eq!(m[10].value, None, "NaN is kept as a missing value");
    assert_eq!(last_step(&dir).unwrap(), Some(10));
    let imgs = images(&dir).unwrap();
    assert_eq!(image_png(&dir, imgs[0].id).unwrap(), b"\x89PNG fake");
    assert_eq!(events(&dir).unwrap()[0].kind, "checkpoint");
}

#[test]
fn a_dropped_writer_marks_the_run_failed() {
    let root = tempfile::tempdir().unwrap();
    let w = RunWriter::create(root.path(), None, &new_run("a", 1e-3)).unwrap();
    let dir = w.dir().to_path_buf();
    drop(w);
    let run = read_run(&dir).unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.unwrap().contains("without finishing"));
}

#[test]
fn reopening_resumes_as_running() {
    let root = tempfile::tempdir().unwrap();
    let w = RunWriter::create(root.path(), None, &new_run("a", 1e-3)).unwrap();
    let dir = w.dir().to_path_buf();
    w.finish(Outcome::Interrupted).unwrap();
    let w = RunWriter::reopen(&dir, RunWriter::claim(&dir).unwrap()).unwrap();
    assert_eq!(read_run(&dir).unwrap().status, RunStatus::Running);
    let err = RunWriter::claim(&dir).unwrap_err().to_string();
    assert!(err.contains("is being resumed by pid"), "{err}");
    w.finish(Outcome::Failed("boom".into())).unwrap();
    let run = read_run(&dir).unwrap();
    assert_eq!(
        (run.status, run.error.as_deref()),
        (RunStatus::Failed, Some("boom"))
    );
    assert_eq!(events(&dir).unwrap()[0].kind, "resumed");
}

#[test]
fn a_resume_given_up_leaves_the_run_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let w = RunWriter::create(root.path(), None, &new_run("a", 1e-3)).unwrap();
    let dir = w.dir().to_path_buf();
    w.finish(Outcome::Interrupted).unwrap();
    let before = read_run(&dir).unwrap();
    let w = RunWriter::reopen(&dir, RunWriter::claim(&dir).unwrap()).unwrap();
    w.give_up_resume("data/x: no such folder").unwrap();
    let after = read_run(&dir).unwrap();
    assert_eq!((after.status, after.error), (before.status, before.error));
    assert_eq!(after.ended, before.ended);
    let kinds: Vec<String> = events(&dir).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["resumed", "resume-failed"]);
    RunWriter::claim(&dir).expect("released");
}

#[test]
fn ids_resolve_by_prefix_path_or_not_at_all() {
    let root = tempfile::tempdir().unwrap();
    let a = RunWriter::create(root.path(), None, &new_run("a", 1e-3)).unwrap();
    let b = RunWriter::create(&root.path().join("sweep1"), Some("0"), &new_run("b", 1e-4)).unwrap();
    assert_eq!(resolve_run(&a.id()[..6], root.path()).unwrap(), a.dir());
    assert_eq!(resolve_run(b.id(), root.path()).unwrap(), b.dir());
    assert_eq!(
        resolve_run(&b.dir().display().to_string(), root.path()).unwrap(),
        b.dir()
    );
    assert!(matches!(
        resolve_run("zzzzzzzzz", root.path()),
        Err(StoreError::NoSuchRun { .. })
    ));
    assert!(matches!(
        resolve_run("", root.path()),
        Err(StoreError::NoSuchRun { .. })
    ));
    // A second directory whose id shares a's first three characters.
    let twin = root.path().join(format!("7-{}zz", &a.id()[..3]));
    std::fs::create_dir(&twin).unwrap();
    std::fs::copy(a.dir().join(super::RUN_DB), twin.join(super::RUN_DB)).unwrap();
    assert!(matches!(
        resolve_run(&a.id()[..3], root.path()),
        Err(StoreError::AmbiguousRun { .. })
    ));
    assert_eq!(resolve_run(&a.id()[..4], root.path()).unwrap(), a.dir());
}

#[test]
fn filters_and_sorting_over_listed_runs() {
    let root = tempfile::tempdir().unwrap();
    for (name, lr, iou) in [("a", 1e-2, 0.5), ("b", 1e-4, 0.8), ("c", 5e-4, 0.7)] {
        let mut w = RunWriter::create(root.path(), None, &new_run(name, lr)).unwrap();
        w.log_scalar(1, 1, "val", "iou", iou).unwrap();
        let outcome = if name == "c" {
            Outcome::Failed("x".into())
        } else {
            Outcome::Completed
        };
        w.finish(outcome).unwrap();
    }
    let mut runs: Vec<_> = list_runs(root.path())
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let names = |runs: &[super::query::RunInfo], e: &str| -> Vec<String> {
        let e = Expr::parse(e).unwrap();
        runs.iter()
            .filter(|r| e.matches(r))
            .map(|r| r.name.clone())
            .collect()
    };
    let mut got = names(&runs, "params.lr<1e-3 and status=completed");
    got.sort();
    assert_eq!(got, vec!["b"]);
    let mut got = names(&runs, "max.val/iou >= 0.7 or name = a");
    got.sort();
    assert_eq!(got, vec!["a", "b", "c"]);
    assert_eq!(names(&runs, "not status=completed"), vec!["c"]);
    assert!(names(&runs, "params.nope>1").is_empty());
    sort_runs(&mut runs, "-max.val/iou");
    let order: Vec<_> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, vec!["b", "c", "a"]);
}

#[test]
fn truncation_forgets_later_steps_and_rebuilds_the_summary() {
    let root = tempfile::tempdir().unwrap();
    let mut w = RunWriter::create(root.path(), None, &new_run("a", 1e-3)).unwrap();
    for step in 0..10u64 {
        w.log_scalar(step, (step / 5) as u32, "step", "loss", 10.0 - step as f64)
            .unwrap();
    }
    w.log_image(1, "seed", b"x").unwrap();
    w.log_image(2, "seed", b"y").unwrap();
    w.truncate_after(4, 1).unwrap();
    let dir = w.dir().to_path_buf();
    w.finish(Outcome::Completed).unwrap();
    let m = metrics(&dir, None).unwrap();
    assert_eq!(m.len(), 5);
    let run = read_run(&dir).unwrap();
    let s = run.summary("step", "loss").unwrap();
    assert_eq!(
        (s.count, s.last, s.min, s.last_step),
        (5, Some(6.0), Some(6.0), 4)
    );
    assert_eq!(images(&dir).unwrap().len(), 1);
}

#[test]
fn tags_and_notes_are_written_beside_a_live_writer_and_filter_runs() {
    let root = tempfile::tempdir().unwrap();
    let mut live = RunWriter::create(root.path(), None, &new_run("live", 1e-3)).unwrap();
    let dir = live.dir().to_path_buf();
    let mut other = RunWriter::create(root.path(), None, &new_run("other", 1e-2)).unwrap();
    other.log_scalar(1, 0, "train", "loss", 1.0).unwrap();
    other.finish(Outcome::Completed).unwrap();
    live.log_scalar(1, 0, "train", "loss", 2.0).unwrap();

    let mut tagger = RunWriter::annotate(&dir).unwrap();
    tagger
        .add_tags(&["best".into(), "<b>x</b>".into(), "best".into()])
        .unwrap();
    tagger.add_note("lr looks high").unwrap();
    assert_eq!(
        tagger
            .remove_tags(&["<b>x</b>".into(), "gone".into()])
            .unwrap(),
        ["gone"]
    );
    tagger.close().unwrap();
    for step in 2..5u64 {
        live.log_scalar(step, 0, "train", "loss", 2.0).unwrap();
    }
    live.finish(Outcome::Completed).unwrap();

    let run = read_run(&dir).unwrap();
    assert_eq!(run.tags, ["best"]);
    assert_eq!(run.notes.len(), 1);
    assert_eq!(run.notes[0].text, "lr looks high");
    assert_eq!(run.status, RunStatus::Completed, "the writer's end is kept");
    assert_eq!(metrics(&dir, None).unwrap().len(), 4, "every scalar kept");

    let runs: Vec<_> = list_runs(root.path())
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let names = |expr: &str| -> Vec<String> {
        let e = Expr::parse(expr).unwrap();
        let mut n: Vec<String> = runs
            .iter()
            .filter(|r| e.matches(r))
            .map(|r| r.name.clone())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names("tag=best"), ["live"]);
    assert_eq!(names("tag!=best"), ["other"]);
    assert_eq!(names("tag~es"), ["live"]);
    assert!(names("tag=nosuch").is_empty());
}
