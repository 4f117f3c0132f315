//! `esx predict`, `esx eval` and the training pictures as a user drives them,
//! on a tiny synthetic dataset whose frames are not a multiple of 8 wide.

mod common;

use std::path::PathBuf;

use common::{esx, fails, json, succeeds, write_files};
use esx::data::tiff_io::read_labels;
use esx::metrics::{FrameScores, Scores};
use esx::store::query::{images, metrics, read_run};
use esx::store::RunStatus;

/// Trains the tiny run once; returns (workdir, run dir).
fn trained() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("tiny.toml", &tiny())]);
    let out = succeeds(dir.path(), &["run", "tiny.toml", "--json", "-q"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let run_dir = dir.path().join(r["dir"].as_str().unwrap());
    (dir, run_dir)
}

#[test]
fn predict_eval_tune_and_pictures_end_to_end() {
    let (dir, run_dir) = trained();
    let d = dir.path();
    let id = read_run(&run_dir).unwrap().id;

    // Pictures at every epoch, and validation AP/SEG as scalars.
    let imgs = images(&run_dir).unwrap();
    for epoch in [1, 2] {
        for kind in [
            "seed",
            "sigma",
            "offset_hsv",
            "offset_x",
            "offset_y",
            "embedding",
            "instances",
            "panel",
        ] {
            assert!(
                imgs.iter().any(|i| i.epoch == epoch && i.kind == kind),
                "no {kind} picture at epoch {epoch}"
            );
        }
    }
    let m = metrics(&run_dir, None).unwrap();
    for key in ["ap50", "seg", "matched_iou"] {
        assert_eq!(
            m.iter()
                .filter(|r| r.split == "val" && r.key == key)
                .count(),
            2,
            "val {key}"
        );
    }
    succeeds(d, &["show", &id, "--images", "pics"]);
    let panel = image::open(d.join("pics/epoch002_panel.png")).unwrap();
    assert!(panel.width() > 900, "the panel holds seven pictures");

    // predict: a whole sequence folder, CTC names, uint16 masks, overlays.
    let p = json(
        d,
        &["predict", &id, "data/tiny/02", "--out", "masks", "--png"],
    );
    assert!(p["checkpoint"]
        .as_str()
        .unwrap()
        .ends_with("best.safetensors"));
    let files = p["images"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for f in files {
        let mask = PathBuf::from(f["mask"].as_str().unwrap());
        let name = mask.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("mask") && name.ends_with(".tif"), "{name}");
        let labels = read_labels(&d.join(&mask)).unwrap();
        assert_eq!((labels.width, labels.height), (60, 60));
        assert!(d.join(f["overlay"].as_str().unwrap()).is_file());
    }
    let mut names: Vec<String> = std::fs::read_dir(d.join("masks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let frames: Vec<String> = std::fs::read_dir(d.join("data/tiny/02"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .replacen('t', "mask", 1)
        })
        .collect();
    for f in &frames {
        assert!(names.contains(f), "{f} missing from {names:?}");
    }
    // Masks are stored as 16-bit samples.
    let first = d.join("masks").join(&frames[0]);
    let mut dec = tiff::decoder::Decoder::new(std::fs::File::open(&first).unwrap()).unwrap();
    assert_eq!(dec.colortype().unwrap(), tiff::ColorType::Gray(16));

    // eval: its figures are those of the masks predict wrote, and they are
    // recorded with the run as split `test` without changing its status.
    let e = json(d, &["eval", &id, "data/tiny", "--sequence", "02"]);
    let scores = &e["scores"];
    let mut by_frame = Vec::new();
    for t in ["001", "002", "003", "000"] {
        let truth = d.join(format!("data/tiny/02_GT/SEG/man_seg{t}.tif"));
        if truth.is_file() {
            let pred = read_labels(&d.join(format!("masks/mask{t}.tif"))).unwrap();
            by_frame.push(FrameScores::new(
                &format!("02/t{t}"),
                &read_labels(&truth).unwrap(),
                &pred,
            ));
        }
    }
    let mine = Scores::of(by_frame);
    assert_eq!(
        scores["frames"].as_array().unwrap().len(),
        mine.frames.len()
    );
    assert!((scores["seg"].as_f64().unwrap() - mine.seg).abs() < 1e-12);
    assert!((scores["ap_mean"][0].as_f64().unwrap() - mine.ap50()).abs() < 1e-12);
    let info = read_run(&run_dir).unwrap();
    assert_eq!(info.status, RunStatus::Completed);
    let test_seg = info.summary("test", "seg").unwrap().last.unwrap();
    assert!((test_seg - mine.seg).abs() < 1e-12);
    let table = succeeds(d, &["eval", &id, "data/tiny", "--sequence", "02"]);
    assert!(table.contains("SEG") && table.contains("AP50"), "{table}");
    // A second evaluation replaces the first's scalars.
    let tests = metrics(&run_dir, None)
        .unwrap()
        .into_iter()
        .filter(|r| r.split == "test" && r.key == "seg")
        .count();
    assert_eq!(tests, 1);

    // --tune stores the clustering it chose with the run, and predict
    // then uses it.
    let t = json(d, &["eval", &id, "data/tiny", "--sequence", "02", "--tune"]);
    let best = &t["tuned"]["best"];
    let tuned = best["fg_thresh"].as_f64().unwrap();
    let seed = best["seed_thresh"].as_f64().unwrap();
    assert!((0.3..=0.7).contains(&tuned) && (0.5..=0.95).contains(&seed));
    assert!(
        best["ap50"].as_f64().unwrap() >= t["tuned"]["before"]["ap50"].as_f64().unwrap(),
        "{t}"
    );
    let info = read_run(&run_dir).unwrap();
    let two = |v: f64| (v * 100.0).round() / 100.0;
    assert_eq!(info.params["tuned.cluster.fg_thresh"].num, Some(two(tuned)));
    assert_eq!(
        info.params["tuned.cluster.seed_thresh"].num,
        Some(two(seed))
    );
    assert_eq!(
        info.params["tuned.cluster.min_size"].num,
        best["min_size"].as_f64()
    );
    let p = json(
        d,
        &["predict", &id, "data/tiny/01/t000.tif", "--out", "one"],
    );
    assert!((p["cluster"]["fg_thresh"].as_f64().unwrap() - two(tuned)).abs() < 1e-9);
    assert!((p["cluster"]["seed_thresh"].as_f64().unwrap() - two(seed)).abs() < 1e-9);
    assert_eq!(p["cluster"]["min_size"].as_f64(), best["min_size"].as_f64());
    assert_eq!(p["tta"].as_bool(), best["tta"].as_bool(), "{p}");
    let p = json(
        d,
        &[
            "predict",
            &id,
            "data/tiny/01/t000.tif",
            "--out",
            "one",
            "--fg-thresh",
            "0.6",
        ],
    );
    assert_eq!(p["cluster"]["fg_thresh"].as_f64().unwrap(), 0.6);

    // A bare checkpoint works too (thresholds from its run's config), and
    // TTA and tiling run through the binary.
    let ckpt = run_dir.join("checkpoints/last.safetensors");
    let p = json(
        d,
        &[
            "predict",
            ckpt.to_str().unwrap(),
            "data/tiny/01",
            "--out",
            "tta",
            "--tta",
            "--tile",
            "64",
            "--overlap",
            "16",
        ],
    );
    assert_eq!(p["images"].as_array().unwrap().len(), 4);
}

#[test]
fn bad_input_gets_one_line_errors_and_odd_images_are_handled() {
    let (dir, run_dir) = trained();
    let d = dir.path();
    let id = read_run(&run_dir).unwrap().id;
    let predict = |extra: &[&str]| {
        let mut args = vec!["predict", id.as_str(), "data/tiny/01", "--out", "x"];
        args.extend_from_slice(extra);
        fails(d, &args)
    };
    let e = fails(d, &["predict", "nosuchrun", "data/tiny/01", "--out", "x"]);
    assert!(e.contains("nosuchrun"), "{e}");
    let e = fails(d, &["predict", &id, "data/tiny/missing.tif", "--out", "x"]);
    assert!(e.contains("missing.tif"), "{e}");
    let e = predict(&["--tile", "64", "--overlap", "64"]);
    assert!(e.contains("--tile"), "{e}");
    let e = predict(&["--fg-thresh", "2"]);
    assert!(e.contains("--fg-thresh 2"), "{e}");
    // No GT in a sequence.
    std::fs::create_dir_all(d.join("data/tiny/03")).unwrap();
    std::fs::copy(
        d.join("data/tiny/01/t000.tif"),
        d.join("data/tiny/03/t000.tif"),
    )
    .unwrap();
    let e = fails(d, &["eval", &id, "data/tiny", "--sequence", "03"]);
    assert!(e.contains("03"), "{e}");
    // A checkpoint outside any run has no validation frames to tune on.
    std::fs::copy(
        run_dir.join("checkpoints/last.safetensors"),
        d.join("bare.safetensors"),
    )
    .unwrap();
    let e = fails(
        d,
        &[
            "eval",
            "bare.safetensors",
            "data/tiny",
            "--sequence",
            "01",
            "--tune",
        ],
    );
    assert!(e.contains("--tune"), "{e}");
    // A checkpoint with the wrong shapes names the tensor.
    let bad = d.join("bad.safetensors");
    let t = candle_core::Tensor::zeros(
        (4, 16, 2, 2),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("decoders.0.output_conv.weight".to_string(), t)]),
        &bad,
    )
    .unwrap();
    let e = fails(
        d,
        &[
            "predict",
            bad.to_str().unwrap(),
            "data/tiny/01",
            "--out",
            "x",
        ],
    );
    assert!(e.contains("bad.safetensors"), "{e}");

    // RGB converts with a warning; an empty image gives an empty mask; an
    // odd size is padded and cropped back.
    let odd = d.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    let rgb = odd.join("t001.tif");
    tiff::encoder::TiffEncoder::new(std::fs::File::create(&rgb).unwrap())
        .unwrap()
        .write_image::<tiff::encoder::colortype::RGB8>(37, 29, &vec![90u8; 37 * 29 * 3])
        .unwrap();
    let out = esx(d)
        .args(["predict", &id, "odd", "--out", "oddmasks"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning") && err.contains("RGB"), "{err}");
    let labels = read_labels(&d.join("oddmasks/mask001.tif")).unwrap();
    assert_eq!((labels.width, labels.height), (37, 29));
    assert!(
        labels.data.iter().all(|&v| v == 0),
        "a flat image has no cells"
    );
    // The run is still completed after all this.
    assert_eq!(read_run(&run_dir).unwrap().status, RunStatus::Completed);
}

fn tiny() -> String {
    common::tiny_experiment(2, 60, 1)
}
