//! Fine-tuning as a user drives it: `init=RUN` or `init=FILE` starts a run
//! from those weights (frozen parts stay as they were), the run records its
//! parent, and show and the report print the lineage; bad `init` and
//! `train.freeze` are one line each and record nothing.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{fails, json, recorded_run, succeeds, tiny_experiment, write_files};
use esx::store::query::read_run;
use sha2::{Digest, Sha256};

fn fixture(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures/import").join(name)
}

fn best(run_dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(run_dir.join("checkpoints/best.safetensors"), &Device::Cpu)
        .unwrap()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    a == b
}

fn runs_recorded(d: &Path) -> usize {
    std::fs::read_dir(d.join("runs"))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[test]
fn a_run_starts_from_an_imported_model_freezes_its_encoder_and_keeps_the_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_files(d, &[("tiny.toml", &tiny_experiment(1, 64, 0))]);
    let pth = fixture("best_iou_model.pth");
    let imported = json(
        d,
        &["import", pth.to_str().unwrap(), "--name", "pretrained"],
    );
    let parent = imported["id"].as_str().unwrap();
    let parent_dir = d.join("runs").join(parent);

    let b = json(
        d,
        &[
            "run",
            "tiny.toml",
            &format!("init={parent}"),
            "train.freeze=[\"encoder\"]",
            "name=\"tuned-b\"",
            "-q",
        ],
    );
    let b_dir = d.join(b["dir"].as_str().unwrap());
    let b_id = b["id"].as_str().unwrap();
    let info = read_run(&b_dir).unwrap();
    assert_eq!(info.params["init.run"].value, parent);
    // The file read was the imported run's checkpoint.
    let checkpoint = std::fs::read(parent_dir.join("checkpoints/best.safetensors")).unwrap();
    assert_eq!(
        info.params["init.sha256"].value,
        format!("{:x}", Sha256::digest(checkpoint))
    );
    // The frozen encoder's parameters are the parent's, bit for bit; the
    // decoders trained on.
    let (from, now) = (best(&parent_dir), best(&b_dir));
    let frozen = [
        "encoder.initial_block.conv.weight",
        "encoder.layers.5.conv3x1_1.bias",
    ];
    for name in frozen {
        assert!(same(&from[name], &now[name]), "{name} changed");
    }
    assert!(!same(
        &from["decoders.0.output_conv.weight"],
        &now["decoders.0.output_conv.weight"]
    ));

    // A grandchild: show and the report give the whole line.
    let c = json(d, &["run", "tiny.toml", &format!("init={b_id}"), "-q"]);
    let c_id = c["id"].as_str().unwrap();
    let show = succeeds(d, &["show", c_id]);
    let line = format!(
        "init       run {b_id} (tuned-b) ← run {parent} (pretrained) ← imported {}",
        pth.canonicalize().unwrap().display()
    );
    assert!(show.contains(&line), "{show}");
    succeeds(d, &["report", "--out", "report.html"]);
    let html = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(html.contains("init from") && html.contains(&format!("run {b_id} (tuned-b)")));

    // A model file directly: its path is the lineage.
    let f = json(
        d,
        &["run", "tiny.toml", &format!("init={}", pth.display()), "-q"],
    );
    let show = succeeds(d, &["show", f["id"].as_str().unwrap()]);
    assert!(
        show.contains(&format!(
            "init       {}",
            pth.canonicalize().unwrap().display()
        )),
        "{show}"
    );
}

#[test]
fn bad_init_and_freeze_are_one_line_each_and_record_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_files(d, &[("tiny.toml", &tiny_experiment(1, 64, 0))]);
    let mut empty = recorded_run(&d.join("runs"), "never-trained", "", &[1.0]);
    empty.flush().unwrap();
    let empty_id = empty.id().to_string();
    empty
        .finish(esx::store::Outcome::Failed("stopped".into()))
        .unwrap();
    let pth = fixture("best_iou_model.pth");
    let other = fixture("other_arch.pth");
    common::write_3d_model(&d.join("nuclei3d.safetensors"));
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["init=nosuchrun".into()],
            "init = \"nosuchrun\": no model file of that name, and no run matches `nosuchrun`"
                .into(),
        ),
        (
            vec![format!("init={empty_id}")],
            format!("run {empty_id} has no checkpoint"),
        ),
        (
            vec![format!("init={}", pth.display()), "model.n_sigma=1".into()],
            "`decoders.0.output_conv.weight` 16×4×2×2 not 16×3×2×2".into(),
        ),
        (
            vec![format!("init={}", other.display())],
            "unexpected `0.bias`".into(),
        ),
        (
            vec!["init=nuclei3d.safetensors".into()],
            "a 3D model (BranchedERFNet_3d".into(),
        ),
        (
            vec!["train.freeze=[\"encodr\"]".into()],
            "train.freeze: \"encodr\" names no part".into(),
        ),
        (
            vec!["train.freeze=[\"encoder\", \"decoders\"]".into()],
            "nothing would train".into(),
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["run".to_string(), "tiny.toml".into(), "-q".into()];
        args.extend(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = fails(d, &args);
        assert!(e.contains(&says), "esx {args:?}: {e}");
        assert_eq!(runs_recorded(d), 1, "esx {args:?} recorded a run");
    }
}
