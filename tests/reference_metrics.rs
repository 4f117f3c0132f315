//! esx's metrics against independent implementations on the same masks:
//! StarDist's matching (per image and pooled over the dataset, every AP
//! threshold EmbedSeg reports) and py-ctcmetrics' SEG — values made by
//! tools/reference/make_metric_fixtures.py, matched to 1e-9.

use std::path::PathBuf;

use candle_core::Device;
use esx::data::Grid;
use esx::metrics::{match_at, overlap, pool, seg, seg_parts};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics")
}

fn masks() -> Vec<(Grid<u32>, Grid<u32>)> {
    let t =
        candle_core::safetensors::load(fixtures().join("masks.safetensors"), &Device::Cpu).unwrap();
    let grid = |name: &str| {
        let m = &t[name];
        let (h, w) = m.dims2().unwrap();
        Grid::new(w, h, m.flatten_all().unwrap().to_vec1::<u32>().unwrap())
    };
    (0..t.len() / 2)
        .map(|k| (grid(&format!("truth_{k}")), grid(&format!("pred_{k}"))))
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9, "{what}: esx {a} vs reference {b}");
}

#[test]
fn ap_per_image_and_pooled_match_stardist() {
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("reference.json")).unwrap()).unwrap();
    let pairs = masks();
    assert_eq!(pairs.len(), reference["frames"].as_array().unwrap().len());
    for thr in reference["thresholds"].as_array().unwrap() {
        let t = thr.as_f64().unwrap();
        let key = serde_json::to_string(thr).unwrap();
        let mut per_image = Vec::new();
        for (k, (truth, pred)) in pairs.iter().enumerate() {
            let m = match_at(&overlap(truth, pred), t);
            let r = &reference["frames"][k][&key];
            for (got, field) in [
                (m.tp as f64, "tp"),
                (m.fp as f64, "fp"),
                (m.fn_ as f64, "fn"),
                (m.accuracy, "accuracy"),
                (m.precision, "precision"),
                (m.recall, "recall"),
                (m.f1, "f1"),
                (m.mean_matched_score, "mean_matched_score"),
                (m.mean_true_score, "mean_true_score"),
                (m.panoptic_quality, "panoptic_quality"),
            ] {
                close(
                    got,
                    r[field].as_f64().unwrap(),
                    &format!("frame {k} thresh {t} {field}"),
                );
            }
            per_image.push(m);
        }
        let p = pool(&per_image);
        let r = &reference["pooled"][&key];
        for (got, field) in [
            (p.tp as f64, "tp"),
            (p.fp as f64, "fp"),
            (p.fn_ as f64, "fn"),
            (p.accuracy, "accuracy"),
            (p.mean_matched_score, "mean_matched_score"),
        ] {
            close(
                got,
                r[field].as_f64().unwrap(),
                &format!("pooled thresh {t} {field}"),
            );
        }
    }
}

#[test]
fn seg_matches_py_ctcmetrics() {
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("reference.json")).unwrap()).unwrap();
    let parts: Vec<(f64, usize)> = masks()
        .iter()
        .map(|(t, p)| seg_parts(&overlap(t, p)))
        .collect();
    for (k, part) in parts.iter().enumerate() {
        close(
            seg(&[*part]),
            reference["seg_per_frame"][k].as_f64().unwrap(),
            &format!("SEG of frame {k}"),
        );
    }
    close(
        seg(&parts),
        reference["seg"].as_f64().unwrap(),
        "SEG over all frames",
    );
}
