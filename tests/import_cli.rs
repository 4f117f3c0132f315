//! `esx import` as a user drives it: EmbedSeg's own checkpoint becomes a run
//! that predict, eval, tune, show and report take; bad files are one line
//! each and record nothing.

mod common;

use std::path::PathBuf;

use common::{fails, json, succeeds};
use esx::store::query::read_run;
use sha2::{Digest, Sha256};

fn fixture(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures/import").join(name)
}

#[test]
fn an_embedseg_checkpoint_is_a_run_that_predict_eval_and_tune_take() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pth = fixture("best_iou_model.pth");
    let pth_arg = pth.to_str().unwrap();
    let r = json(d, &["import", pth_arg, "--name", "hela-pretrained"]);
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["n_sigma"], 2);
    assert_eq!(r["format"], "pytorch");
    let run_dir = d.join("runs").join(id);

    // Recorded: status, where it came from, EmbedSeg's own figures.
    let info = read_run(&run_dir).unwrap();
    assert_eq!(info.status.as_str(), "imported");
    assert_eq!(info.name, "hela-pretrained");
    let sha = format!("{:x}", Sha256::digest(std::fs::read(&pth).unwrap()));
    assert_eq!(info.params["import.sha256"].value, sha);
    assert_eq!(info.params["import.epoch"].num, Some(7.0));
    assert_eq!(info.params["import.best_iou"].num, Some(0.625));
    assert!(info.params["import.source"]
        .value
        .ends_with("best_iou_model.pth"));
    let shown = succeeds(d, &["show", id]);
    assert!(shown.contains("status     imported"), "{shown}");
    assert!(shown.contains(&format!(
        "imported   {}",
        pth.canonicalize().unwrap().display()
    )));
    assert!(
        shown.contains("trained 7 epochs, best validation IoU 0.6250"),
        "{shown}"
    );
    assert!(succeeds(d, &["ls"]).contains("imported"));

    // Used like a trained run.
    succeeds(d, &["synth", "data", "--frames", "2", "--size", "64", "-q"]);
    succeeds(d, &["predict", id, "data/01", "--out", "masks", "-q"]);
    assert!(d.join("masks/mask000.tif").is_file() && d.join("masks/mask001.tif").is_file());
    let scores = json(d, &["eval", id, "data", "-q"]);
    assert_eq!(scores["scores"]["frames"].as_array().unwrap().len(), 4);
    // No validation frames of its own: tune says how to name some.
    let e = fails(d, &["tune", id]);
    assert!(e.contains("--data DIR"), "{e}");
    let t = json(
        d,
        &[
            "tune",
            id,
            "--data",
            "data",
            "--sequences",
            "01",
            "--no-tta",
            "-q",
        ],
    );
    assert_eq!(t["frames"], 2);
    assert_eq!(t["frames_from"], "frames of data");
    let shown = succeeds(d, &["show", id]);
    assert!(shown.contains("on 2 frames of data)"), "{shown}");
    assert!(read_run(&run_dir)
        .unwrap()
        .params
        .contains_key("tuned.cluster.seed_thresh"));
    succeeds(d, &["report", "--out", "report.html"]);
    assert!(std::fs::read_to_string(d.join("report.html"))
        .unwrap()
        .contains("hela-pretrained"));

    // Nothing to resume.
    let e = fails(d, &["run", "--resume", id]);
    assert!(e.contains("imported"), "{e}");

    // The weights esx wrote are the file's: a safetensors export imports
    // again, to the same outputs.
    let st = run_dir.join("checkpoints/best.safetensors");
    let again = json(d, &["import", st.to_str().unwrap()]);
    assert_eq!(again["format"], "safetensors");
    assert_eq!(again["tensors"], r["tensors"]);
}

#[test]
fn bad_model_files_are_one_line_each_and_record_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("notes.pth"), "these are notes, not weights").unwrap();
    let whole = std::fs::read(fixture("best_iou_model.pth")).unwrap();
    std::fs::write(d.join("cut.pth"), &whole[..whole.len() * 2 / 3]).unwrap();
    common::write_3d_model(&d.join("nuclei3d.safetensors"));
    let other = fixture("other_arch.pth");
    let calls = fixture("calls_a_function.pth");
    let best = fixture("best_iou_model.pth");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["notes.pth"], "neither a PyTorch checkpoint"),
        (vec!["cut.pth"], "cut.pth: a zip that cannot be read, truncated or damaged"),
        (vec!["missing.pth"], "missing.pth"),
        (
            vec![other.to_str().unwrap()],
            "missing `decoders.0.layers.0.bn.bias` (and 383 more), unexpected `0.bias` (and 5 more)",
        ),
        (vec![calls.to_str().unwrap()], "refused: where the state dict belongs the pickle calls posix.system"),
        (vec!["nuclei3d.safetensors"], "a 3D model"),
        (
            vec![best.to_str().unwrap(), "--n-sigma", "1"],
            "`decoders.0.output_conv.weight` 16×4×2×2 not 16×3×2×2",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["import"];
        all.extend(args.iter());
        let e = fails(d, &all);
        assert!(e.contains(says), "esx {all:?}: {e}");
        let runs = d.join("runs");
        let recorded = std::fs::read_dir(&runs).map(|r| r.count()).unwrap_or(0);
        assert_eq!(recorded, 0, "esx {all:?} recorded a run");
    }
}
