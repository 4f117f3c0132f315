//! `esx tag` and `esx note` as a user drives them: written while the run
//! trains without disturbing it, shown by ls, show and the report (escaped),
//! and found with `--where tag=…`.

mod common;

use common::{fails, recorded_steps, succeeds, train_until_step, write_files};
use esx::store::query::read_run;
use esx::store::RunStatus;

#[test]
fn tags_and_notes_written_while_a_run_trains_are_kept_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("tiny.toml", &common::tiny_experiment(1, 64, 0))],
    );
    let runs = dir.path().join("runs");
    let args = ["tiny.toml", "epochs=2", "train.steps_per_epoch=40"];
    let (mut child, run_dir) = train_until_step(dir.path(), &runs, &args, 5);
    let id = read_run(&run_dir).unwrap().id;
    let tagged = succeeds(dir.path(), &["tag", &id, "best", "<b>x</b>"]);
    assert_eq!(tagged.trim(), format!("run {id}: tags <b>x</b> best"));
    succeeds(dir.path(), &["note", &id, "tagged while it trained"]);
    let trained_on = read_run(&run_dir).unwrap();
    assert_eq!(trained_on.status, RunStatus::Running, "tagged mid-training");
    assert!(child.wait().unwrap().success());

    let run = read_run(&run_dir).unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(recorded_steps(&run_dir), (1..=80).collect::<Vec<_>>());
    assert_eq!(run.tags, ["<b>x</b>", "best"]);

    let ls = succeeds(dir.path(), &["ls"]);
    assert!(ls.lines().next().unwrap().contains("TAGS"), "{ls}");
    assert!(ls.contains("<b>x</b>,best"), "{ls}");
    let found = succeeds(dir.path(), &["ls", "--where", "tag=best", "--json"]);
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    let none = succeeds(dir.path(), &["ls", "--where", "tag!=best"]);
    assert!(!none.contains(&id), "{none}");
    let show = succeeds(dir.path(), &["show", &id]);
    assert!(show.contains("tags       <b>x</b> best"), "{show}");
    assert!(show.contains("tagged while it trained"), "{show}");

    succeeds(dir.path(), &["report", "--out", "report.html"]);
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(page.contains("<span class=\"tag\">&lt;b&gt;x&lt;/b&gt;</span>"));
    assert!(!page.contains("<b>x</b>"), "markup in a tag stays text");
    assert!(page.contains("tagged while it trained"));

    let removed = succeeds(dir.path(), &["tag", &id, "--remove", "<b>x</b>"]);
    assert_eq!(removed.trim(), format!("run {id}: tags best"));
    let err = fails(dir.path(), &["tag", &id, "two words"]);
    assert_eq!(
        err,
        "esx: error: bad tag `two words`: a tag is one word (no spaces): use - or _"
    );
    let err = fails(dir.path(), &["tag", "nosuchrun", "x"]);
    assert!(err.contains("no run matches `nosuchrun`"), "{err}");
    let err = fails(dir.path(), &["note", &id, "  "]);
    assert_eq!(err, "esx: error: the note is empty");
}
