//! `esx sweep` searching as a user drives it: runs pruned by ASHA and the
//! median rule with their slots reused at once, TPE proposing points from
//! results, the same command resuming without repeats, and bad searches
//! refused before anything is recorded.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{esx, fails, succeeds, write_files};
use esx::store::query::{events, list_runs, metrics, RunInfo};
use esx::store::{checkpoint_file, RunStatus};

fn experiment(epochs: u32, steps: u32, extra: &str) -> String {
    esx::bench::sweep::tiny_experiment(epochs, steps as usize) + extra
}

fn setup(epochs: u32, steps: u32, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("tiny.toml", &experiment(epochs, steps, extra))],
    );
    dir
}

fn runs(root: &Path) -> Vec<RunInfo> {
    let mut runs: Vec<RunInfo> = list_runs(root)
        .map(|v| v.into_iter().filter_map(Result::ok).collect())
        .unwrap_or_default();
    runs.sort_by_key(|r| (r.sweep_index, r.created.to_bits()));
    runs
}

fn sweep_db(root: &Path) -> rusqlite::Connection {
    let dir = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("sweep.db").is_file())
        .expect("a sweep folder");
    rusqlite::Connection::open(dir.join("sweep.db")).unwrap()
}

/// One good learning rate among four that learn nothing in an epoch: ASHA
/// (η 3, rungs from epoch 1) keeps only the best third at epoch 1.
const ASHA: &str = "\n[sweep]\nlr = [1e-3, 2e-2, 3e-2, 4e-2, 5e-2]\n\n[search]\nprune = \"asha\"\nmin_epochs = 1\nreduction = 3\n";

/// The same as trials of a config group, so that the good trial's epochs are
/// long (12 steps) and the bad ones' short (2 steps): the good run is still
/// training while the other slot goes through the bad ones, whichever
/// reaches the first rung first.
fn trials_setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let base = esx::bench::sweep::tiny_experiment(6, 0).replace("steps_per_epoch = 0\n", "");
    let experiment = format!(
        "defaults = [\"trial/good\"]\n{base}\n[search]\nprune = \"asha\"\nmin_epochs = 1\nreduction = 3\n"
    );
    let trial = |lr: &str, steps: u32| format!("lr = {lr}\n[train]\nsteps_per_epoch = {steps}\n");
    write_files(
        dir.path(),
        &[
            ("tiny.toml", &experiment),
            ("trial/good.toml", &trial("1e-3", 12)),
            ("trial/bad1.toml", &trial("2e-2", 2)),
            ("trial/bad2.toml", &trial("3e-2", 2)),
            ("trial/bad3.toml", &trial("4e-2", 2)),
            ("trial/bad4.toml", &trial("5e-2", 2)),
        ],
    );
    dir
}

const TRIALS: &str = "trial=good,bad1,bad2,bad3,bad4";

#[test]
fn asha_prunes_losing_runs_and_their_slots_start_the_next_point_at_once() {
    let dir = trials_setup();
    let out = succeeds(dir.path(), &["sweep", "tiny.toml", TRIALS, "--jobs", "2"]);
    let root = dir.path().join("runs");
    let all = runs(&root);
    assert_eq!(all.len(), 5, "{out}");
    let pruned: Vec<&RunInfo> = all
        .iter()
        .filter(|r| r.status == RunStatus::Pruned)
        .collect();
    assert!(pruned.len() >= 2, "{out}");
    assert!(
        all.iter()
            .all(|r| matches!(r.status, RunStatus::Pruned | RunStatus::Completed)),
        "{out}"
    );
    let good = &all[0];
    assert_eq!(
        good.status,
        RunStatus::Completed,
        "the good point runs to the end: {out}"
    );
    for run in &pruned {
        // Stopped at the end of an epoch, with its checkpoint and the reason.
        assert!(checkpoint_file(&run.dir, "last").is_file());
        let ev = events(&run.dir).unwrap();
        let why = ev
            .iter()
            .find(|e| e.kind == "pruned")
            .expect("a pruned event");
        assert!(why.detail.contains("val/iou"), "{}", why.detail);
        let epochs = metrics(&run.dir, Some(&["loss"]))
            .unwrap()
            .iter()
            .filter(|m| m.split == "train")
            .count();
        assert!(epochs < 6, "pruned after {epochs} epochs");
        assert!(run.error.is_none());
    }
    // A slot freed by pruning started the next point while the good run trained on.
    let reused = pruned.iter().any(|p| {
        let freed = p.ended.unwrap();
        all.iter().any(|next| {
            next.sweep_index > p.sweep_index
                && next.created >= freed
                && good.created < freed
                && good.ended.unwrap() > next.created
        })
    });
    assert!(
        reused,
        "no point started in a pruned run's slot while another ran:\n{out}"
    );
    assert!(out.contains("pruned"), "{out}");
    let ls = succeeds(dir.path(), &["ls"]);
    assert_eq!(ls.matches(" pruned ").count(), pruned.len(), "{ls}");
    let show = succeeds(dir.path(), &["show", &pruned[0].id]);
    assert!(show.contains("pruned"), "{show}");
    // sweep.db has every rung decision and the best point.
    let db = sweep_db(&root);
    let prunes: i64 = db
        .query_row(
            "SELECT count(*) FROM rungs WHERE decision = 'prune'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(prunes as usize, pruned.len());
    let best: i64 = db
        .query_row(
            "SELECT best_idx FROM results ORDER BY wall DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(best, 0);

    // The report marks the pruned runs and shows the search's own charts.
    succeeds(dir.path(), &["report", "runs", "--out", "page.html"]);
    let page = std::fs::read_to_string(dir.path().join("page.html")).unwrap();
    assert_eq!(
        page.matches("<td class=\"status pruned\"").count(),
        pruned.len(),
        "a pruned status cell per pruned run"
    );
    assert!(page.contains("ASHA pruning (η 3, rungs from epoch 1)"));
    assert!(page.contains(&format!("{} runs pruned", pruned.len())));
    for figure in ["chart history", "chart importance", "chart parallel"] {
        assert_eq!(
            page.matches(&format!("<figure class=\"{figure}\"><svg"))
                .count(),
            1,
            "{figure}"
        );
    }
    assert!(page.contains("best val/iou by trial"));

    // The same command: everything ended (pruned is final), nothing runs again.
    let again = succeeds(dir.path(), &["sweep", "tiny.toml", TRIALS, "--jobs", "2"]);
    assert!(again.contains("0 launched now, 5 skipped"), "{again}");
    assert_eq!(runs(&root).len(), 5);
}

#[test]
fn median_pruning_needs_two_others_and_stops_a_run_below_their_median() {
    // One at a time: the first two run to the end, the third is judged
    // against them at epoch 2.
    let extra =
        "\n[sweep]\nlr = [1e-3, 2e-3, 5e-2]\n\n[search]\nprune = \"median\"\nmin_epochs = 2\n";
    let dir = setup(3, 2, extra);
    let out = succeeds(dir.path(), &["sweep", "tiny.toml", "--jobs", "1"]);
    let all = runs(&dir.path().join("runs"));
    let status: Vec<RunStatus> = all.iter().map(|r| r.status).collect();
    assert_eq!(
        status,
        [
            RunStatus::Completed,
            RunStatus::Completed,
            RunStatus::Pruned
        ],
        "{out}"
    );
    let ev = events(&all[2].dir).unwrap();
    let why = &ev.iter().find(|e| e.kind == "pruned").unwrap().detail;
    assert!(
        why.contains("at epoch 2") && why.contains("median of 2 other runs"),
        "{why}"
    );
}

#[test]
fn tpe_proposes_from_results_and_the_same_command_continues_without_repeats() {
    let dir = setup(2, 2, "");
    let args = [
        "sweep",
        "tiny.toml",
        "lr=loguniform(1e-5,1e-2)",
        "model.sigma_init=uniform(0.3,1.5)",
        "train.augment=choice(true,false)",
        "--method",
        "tpe",
        "--trials",
        "6",
        "--seed",
        "3",
        "--jobs",
        "2",
    ];
    let dry = succeeds(dir.path(), &[&args[..], &["--dry-run"]].concat());
    assert!(dry.contains("the 2 free slots would start"), "{dry}");
    assert!(dry.contains("then 4 more, each proposed by TPE"), "{dry}");
    assert!(
        !dir.path().join("runs").exists(),
        "a dry run records nothing"
    );

    let out = succeeds(dir.path(), &args);
    let root = dir.path().join("runs");
    let all = runs(&root);
    assert_eq!(all.len(), 6, "{out}");
    let indices: Vec<i64> = all.iter().filter_map(|r| r.sweep_index).collect();
    assert_eq!(indices, (0..6).collect::<Vec<_>>());
    assert!(
        all.iter().all(|r| r.status == RunStatus::Completed),
        "{out}"
    );
    // The start-up points are random draws, the rest TPE's, from the results then.
    let db = sweep_db(&root);
    let hows: Vec<(String, i64)> = db
        .prepare("SELECT how, finished FROM proposals ORDER BY idx")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(hows.len(), 6);
    assert!(
        hows[0].0.starts_with("random") && hows[1].0.starts_with("random"),
        "{hows:?}"
    );
    assert!(
        hows[2..].iter().all(|(h, _)| h.starts_with("tpe from")),
        "{hows:?}"
    );
    assert!(
        hows[5].1 >= 3,
        "the last proposal saw the results before it: {hows:?}"
    );
    // Every run trained the values it was proposed.
    for run in &all {
        let swept = run.swept.as_ref().unwrap();
        let lr = swept["lr"].as_f64().unwrap();
        assert!((1e-5..=1e-2).contains(&lr), "{lr}");
        assert!(run.overrides.iter().any(|o| o.starts_with("lr=")));
    }

    // The same command: nothing new.
    let again = succeeds(dir.path(), &args);
    assert!(again.contains("0 launched now"), "{again}");
    assert_eq!(runs(&root).len(), 6);
    // Without its sweep.db (deleted), the same command rebuilds the points
    // from the runs, which record them, and reruns none (issue 33 item 10).
    let sweep_dir = all[0].dir.parent().unwrap().to_path_buf();
    for f in [
        "sweep.db",
        "sweep.db-wal",
        "sweep.db-shm",
        "sweep.db-journal",
    ] {
        let _ = std::fs::remove_file(sweep_dir.join(f));
    }
    let again = succeeds(dir.path(), &args);
    assert!(again.contains("0 launched now"), "{again}");
    assert_eq!(runs(&root).len(), 6);
    let rebuilt: i64 = sweep_db(&root)
        .query_row("SELECT count(*) FROM points", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rebuilt, 6);
    // More trials continue the same search: two more points, none repeated.
    let mut more = args.to_vec();
    more[8] = "8";
    let out = succeeds(dir.path(), &more);
    let after = runs(&root);
    assert_eq!(after.len(), 8, "{out}");
    let indices: Vec<i64> = after.iter().filter_map(|r| r.sweep_index).collect();
    assert_eq!(indices, (0..8).collect::<Vec<_>>());
    for r in &all {
        assert!(after.iter().any(|a| a.id == r.id), "earlier runs kept");
    }
}

#[test]
fn an_interrupted_tpe_search_resumes_its_trials_from_their_checkpoints() {
    let dir = setup(3, 20, "");
    let args = [
        "sweep",
        "tiny.toml",
        "lr=loguniform(1e-4,1e-2)",
        "--method",
        "tpe",
        "--trials",
        "3",
        "--jobs",
        "2",
    ];
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("esx"))
        .current_dir(dir.path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let root = dir.path().join("runs");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Stopped once two trials are past their first epoch.
    while runs(&root)
        .iter()
        .filter(|r| checkpoint_file(&r.dir, "last").is_file())
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "two trials never checkpointed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut child = child;
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let before = runs(&root);
    assert!(before.iter().any(|r| r.status == RunStatus::Interrupted));

    succeeds(dir.path(), &args);
    let after = runs(&root);
    assert_eq!(after.len(), 3, "no trial run twice, none lost");
    for r in before.iter().filter(|r| r.status == RunStatus::Interrupted) {
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
fn an_objective_no_run_records_stops_the_search_naming_the_keys() {
    let dir = setup(2, 2, ASHA);
    let out = esx(dir.path())
        .args([
            "sweep",
            "tiny.toml",
            "--jobs",
            "1",
            "--objective",
            "val/dice",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.contains("objective val/dice is not recorded") && last.contains("val/iou"),
        "{err}"
    );
    // The first point failed at its first rung; no other point was started.
    let all = runs(&dir.path().join("runs"));
    assert_eq!(all.len(), 1, "{err}");
    assert_eq!(all[0].status, RunStatus::Failed);
    assert!(all[0].error.as_deref().unwrap().contains("val/dice"));
}

#[test]
fn bad_searches_are_one_line_errors_and_record_nothing() {
    let dir = setup(2, 2, "\n[sweep]\nlr = [1e-3, 1e-4]\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--method", "bayes"],
            "invalid value 'bayes' for '--method",
        ),
        (
            &["--prune", "hyperband"],
            "invalid value 'hyperband' for '--prune",
        ),
        (
            &["--method", "tpe", "--trials", "0"],
            "search.trials: must be at least 1",
        ),
        (&["--method", "tpe"], "needs a number of trials"),
        (
            &["--prune", "asha", "--reduction", "1"],
            "search.reduction: ASHA's η must be at least 2",
        ),
        (
            &["--prune", "median", "--min-epochs", "3"],
            "search.min_epochs: 3 is more than the runs' epochs (2)",
        ),
        (
            &["--objective", "iou", "--prune", "asha"],
            "is not SPLIT/KEY",
        ),
        (&["lr=uniform(1e-4,1e-2)"], "is a distribution, not a grid"),
        (&["--trials", "4"], "need method = \"random\" or \"tpe\""),
    ];
    for (extra, expected) in cases {
        let args = [&["sweep", "tiny.toml"][..], extra].concat();
        let err = fails(dir.path(), &args);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    // The same mistakes in the file's [search] table name the key there.
    for (table, expected) in [
        (
            "method = \"bayes\"",
            "`search.method` = \"bayes\": expected one of grid, random, tpe",
        ),
        (
            "prune = \"hyperband\"",
            "expected one of none, median, asha",
        ),
        (
            "method = \"tpe\"\ntrials = 0",
            "search.trials: must be at least 1",
        ),
        ("prune = \"asha\"\nreduction = 1", "search.reduction"),
        (
            "prune = \"asha\"\nmin_epochs = 5",
            "search.min_epochs: 5 is more than",
        ),
        ("pruner = \"asha\"", "pruner"),
    ] {
        write_files(
            dir.path(),
            &[(
                "bad.toml",
                &experiment(
                    2,
                    2,
                    &format!("\n[sweep]\nlr = [1e-3]\n\n[search]\n{table}\n"),
                ),
            )],
        );
        let err = fails(dir.path(), &["sweep", "bad.toml"]);
        assert!(err.contains(expected), "{table}: {err}");
    }
    assert!(!dir.path().join("runs").exists(), "nothing was recorded");
}
