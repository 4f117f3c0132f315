//! esx's metrics against independent implementations on the same masks:
//! StarDist's matching (per image and pooled over the dataset, every AP
//! threshold EmbedSeg reports) and py-ctcmetrics' SEG — values made by
//! tools/reference/make_metric_fixtures.py (2D images) and
//! make_metric_fixtures_3d.py (volumes), matched to 1e-9.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use esx::data::volume::Volume;
use esx::data::Grid;
use esx::metrics::{match_at, overlap, overlap_volumes, pool, seg, seg_parts, Overlap};

fn fixtures(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures(name).join("reference.json")).unwrap()).unwrap()
}

/// The (truth, prediction) label arrays of a fixture, as u32.
fn tensors(name: &str) -> Vec<(Tensor, Tensor)> {
    let t = candle_core::safetensors::load(fixtures(name).join("masks.safetensors"), &Device::Cpu)
        .unwrap();
    (0..t.len() / 2)
        .map(|k| {
            (
                t[&format!("truth_{k}")].clone(),
                t[&format!("pred_{k}")].clone(),
            )
        })
        .collect()
}

fn labels(m: &Tensor) -> Vec<u32> {
    let m = m.to_dtype(candle_core::DType::U32).unwrap();
    m.flatten_all().unwrap().to_vec1::<u32>().unwrap()
}

/// The 2D fixture's overlaps.
fn overlaps_2d() -> Vec<Overlap> {
    let grid = |m: &Tensor| {
        let (h, w) = m.dims2().unwrap();
        Grid::new(w, h, labels(m))
    };
    tensors("metrics")
        .iter()
        .map(|(t, p)| overlap(&grid(t), &grid(p)))
        .collect()
}

/// The 3D fixture's overlaps, through the volume path.
fn overlaps_3d() -> Vec<Overlap> {
    let volume = |m: &Tensor| {
        let (d, h, w) = m.dims3().unwrap();
        Volume::new(d, h, w, labels(m))
    };
    tensors("metrics3d")
        .iter()
        .map(|(t, p)| overlap_volumes(&volume(t), &volume(p)))
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9, "{what}: esx {a} vs reference {b}");
}

#[test]
fn ap_per_image_and_pooled_match_stardist() {
    check_ap(&reference("metrics"), &overlaps_2d());
}

#[test]
fn ap_of_volumes_matches_stardist() {
    check_ap(&reference("metrics3d"), &overlaps_3d());
}

#[test]
fn seg_matches_py_ctcmetrics() {
    check_seg(&reference("metrics"), &overlaps_2d());
}

#[test]
fn seg_of_volumes_matches_py_ctcmetrics() {
    check_seg(&reference("metrics3d"), &overlaps_3d());
}

fn check_ap(reference: &serde_json::Value, overlaps: &[Overlap]) {
    assert_eq!(
        overlaps.len(),
        reference["frames"].as_array().unwrap().len()
    );
    for thr in reference["thresholds"].as_array().unwrap() {
        let t = thr.as_f64().unwrap();
        let key = serde_json::to_string(thr).unwrap();
        let mut per_image = Vec::new();
        for (k, ov) in overlaps.iter().enumerate() {
            let m = match_at(ov, t);
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

fn check_seg(reference: &serde_json::Value, overlaps: &[Overlap]) {
    let parts: Vec<(f64, usize)> = overlaps.iter().map(seg_parts).collect();
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
