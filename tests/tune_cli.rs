//! Tuning the post-processing, "auto" sizes and the best checkpoint by AP50
//! as a user drives them: `esx run` tunes when training ends, `esx tune`
//! re-tunes, predict uses what was chosen; bad input is one line and
//! records nothing.

mod common;

use common::{fails, json, succeeds, tiny_experiment, write_files};
use esx::store::query::{events, read_run};

/// The tiny experiment with "auto" sizes (its file gives crop_size 32).
fn auto_experiment() -> String {
    tiny_experiment(2, 64, 0).replace("crop_size = 32", "crop_size = \"auto\"")
}

#[test]
fn a_run_tunes_when_training_ends_and_predict_uses_what_it_chose() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_files(d, &[("tiny.toml", &auto_experiment())]);
    let r = json(d, &["run", "tiny.toml", "-q"]);
    let run_dir = d.join(r["dir"].as_str().unwrap());
    let id = r["id"].as_str().unwrap();
    let info = read_run(&run_dir).unwrap();

    // "auto" sizes: recorded as numbers, with the rule and its figures.
    let crop = info.params["auto.data.crop_size"].num.unwrap();
    let min_size = info.params["auto.cluster.min_size"].num.unwrap();
    // The objects are small: the rule's floor, which is also the frames' size.
    assert_eq!(crop, 64.0);
    assert!(min_size >= 1.0);
    assert!(d
        .join(format!("data/tiny/TRAIN_CROPS_{crop}x{crop}"))
        .is_dir());
    let all = events(&run_dir).unwrap();
    let sizes = all.iter().find(|e| e.kind == "auto_sizes").unwrap();
    assert!(
        sizes.detail.contains("round_up_8(mean + 5·std)"),
        "{}",
        sizes.detail
    );
    assert!(
        sizes.detail.contains("0.3 × the median area"),
        "{}",
        sizes.detail
    );

    // Tuned at the end: the values, before and after, and the table.
    for key in ["seed_thresh", "fg_thresh", "min_size"] {
        assert!(
            info.params.contains_key(&format!("tuned.cluster.{key}")),
            "{key}"
        );
    }
    assert!(info.params.contains_key("tuned.tta"));
    let tuned = info.summary("val", "ap50_tuned").unwrap().last.unwrap();
    let untuned = info.summary("val", "ap50_untuned").unwrap().last.unwrap();
    assert!(tuned >= untuned, "{tuned} < {untuned}");
    let event = all.iter().find(|e| e.kind == "tuned").unwrap();
    let t: serde_json::Value = serde_json::from_str(&event.detail).unwrap();
    assert!(t["trials"].as_array().unwrap().len() > 50);
    assert_eq!(t["objective"], "ap50");
    // TTA was tried, so the views' agreement was measured: a number in
    // [0, 1] recorded as a scalar too, or null where nothing was found.
    match t["view_agreement"].as_f64() {
        Some(a) => {
            assert!((0.0..=1.0).contains(&a), "{a}");
            let recorded = info.summary("val", "view_agreement").unwrap().last.unwrap();
            assert!((recorded - a).abs() < 1e-9, "{recorded} {a}");
        }
        None => assert!(t["view_agreement"].is_null(), "{}", t["view_agreement"]),
    }
    // AP was scored every epoch and chose the best checkpoint.
    assert!(info.summary("val", "ap").unwrap().count >= 2);
    assert!(all
        .iter()
        .any(|e| e.kind == "checkpoint" && e.detail.contains("val ap ")));

    // show and predict use it.
    let show = succeeds(d, &["show", id]);
    assert!(
        show.contains("tuned") && show.contains("seed_thresh"),
        "{show}"
    );
    assert!(show.contains("(from the objects in the masks)"), "{show}");
    let p = json(
        d,
        &["predict", id, "data/tiny/01/t000.tif", "--out", "masks"],
    );
    let recorded = |k: &str| info.params[k].num.unwrap();
    assert_eq!(
        p["cluster"]["seed_thresh"].as_f64().unwrap(),
        recorded("tuned.cluster.seed_thresh")
    );
    assert_eq!(
        p["cluster"]["min_size"].as_f64().unwrap(),
        recorded("tuned.cluster.min_size")
    );
    assert_eq!(p["tta"].as_bool(), Some(recorded("tuned.tta") != 0.0));

    // esx tune again, on AP over thresholds and without TTA.
    let t = json(d, &["tune", id, "--objective", "ap", "--no-tta", "-q"]);
    assert_eq!(t["objective"], "ap");
    assert_eq!(t["best"]["tta"], false);
    assert!(t["view_agreement"].is_null(), "no TTA, no views");
    assert!(t["best"]["ap"].as_f64().unwrap() >= t["before"]["ap"].as_f64().unwrap());
    let info = read_run(&run_dir).unwrap();
    assert_eq!(info.params["tuned.tta"].num, Some(0.0));
    assert_eq!(
        events(&run_dir)
            .unwrap()
            .iter()
            .filter(|e| e.kind == "tuned")
            .count(),
        2
    );
}

#[test]
fn bad_input_to_tuning_and_auto_sizes_is_one_line_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let no_val = tiny_experiment(1, 48, 0)
        .replace("val_fraction = 0.25", "val_fraction = 0.0")
        .replace("epochs = 2", "epochs = 1");
    write_files(d, &[("noval.toml", &no_val)]);
    let r = json(d, &["run", "noval.toml", "-q"]);
    let run_dir = d.join(r["dir"].as_str().unwrap());
    let id = r["id"].as_str().unwrap();
    // Training skipped tuning and said why.
    let said = events(&run_dir).unwrap();
    assert!(said.iter().any(|e| e.kind == "tune_skipped"));
    assert!(read_run(&run_dir)
        .unwrap()
        .params
        .keys()
        .all(|k| !k.starts_with("tuned.")));

    // esx tune on it: one line, nothing recorded.
    let err = fails(d, &["tune", id, "-q"]);
    assert!(err.contains("no validation frames"), "{err}");
    let after = events(&run_dir).unwrap();
    assert_eq!(after.len(), said.len());
    assert!(read_run(&run_dir)
        .unwrap()
        .params
        .keys()
        .all(|k| !k.starts_with("tuned.")));

    // An objective that does not exist: on the command line and in a config.
    let err = fails(d, &["tune", id, "--objective", "f1"]);
    assert!(err.contains("f1"), "{err}");
    let err = fails(d, &["run", "noval.toml", "tune.objective=f1"]);
    assert!(
        err.contains("tune.objective") && err.contains("f1"),
        "{err}"
    );

    // A tuned objective cannot prune, and needs tuning after training.
    let err = fails(
        d,
        &[
            "sweep",
            "noval.toml",
            "lr=1e-3,1e-4",
            "--objective",
            "val/ap50_tuned",
            "--prune",
            "median",
            "--dry-run",
        ],
    );
    assert!(
        err.contains("search.prune") && err.contains("val/ap50_tuned"),
        "{err}"
    );
    let err = fails(
        d,
        &[
            "sweep",
            "noval.toml",
            "lr=1e-3,1e-4",
            "tune.after_training=false",
            "--objective",
            "val/ap50_tuned",
            "--dry-run",
        ],
    );
    assert!(err.contains("tune.after_training"), "{err}");

    // "auto" on a dataset without masks: one line, no run recorded.
    std::fs::create_dir_all(d.join("bare/01")).unwrap();
    std::fs::copy(d.join("data/tiny/01/t000.tif"), d.join("bare/01/t000.tif")).unwrap();
    let bare = tiny_experiment(1, 48, 0)
        .replace("root = \"data/tiny\"", "root = \"bare\"")
        .replace("crop_size = 32", "crop_size = \"auto\"");
    let bare = bare[..bare.find("[data.synthetic]").unwrap()].to_string()
        + "[train]\nsteps_per_epoch = 3\n";
    write_files(d, &[("bare.toml", &bare)]);
    let err = fails(d, &["run", "bare.toml", "--runs", "bare_runs"]);
    assert!(err.contains("\"auto\"") && err.contains("masks"), "{err}");
    assert!(
        !d.join("bare_runs").exists()
            || std::fs::read_dir(d.join("bare_runs"))
                .unwrap()
                .next()
                .is_none(),
        "a run was recorded"
    );
}
