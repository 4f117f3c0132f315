//! The earlier Python attempt never learned y offsets, so every cell came out
//! cut into horizontal bands. This test trains esx a short while on synthetic
//! cells in every orientation (many stacked vertically and touching), then on
//! fresh frames checks, per instance and per axis, that embedded pixels
//! (pixel + offset) contract towards the instance's centre along x AND along
//! y, and that clustering yields one instance per cell, not bands. A negative
//! control removes the learned y offsets and checks the same measures fail.

mod common;

use std::path::Path;

use candle_core::{DType, Device};
use esx::config::{Normalization, SynthConfig, SynthKind};
use esx::data::normalize::normalize;
use esx::data::synth::synth_frame;
use esx::data::Grid;
use esx::infer::{cluster, predict, ClusterParams, Prediction};
use esx::model::{BranchedErfnet, Weights};

const EXPERIMENT: &str = r#"
name = "both-axes"
seed = 3
epochs = 4
batch_size = 4
lr = 1e-3

[data]
root = "data/cells"
sequences = ["01"]
crop_size = 64
val_fraction = 0.2

[data.synthetic]
kind = "fluo"
sequences = 1
frames = 10
size = 128
seed = 7

[train]
steps_per_epoch = 60
"#;

fn std_dev(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n).sqrt()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Measures {
    /// Median over instances of embedded spread / pixel spread, per axis.
    ratio_x: f64,
    ratio_y: f64,
    /// Cells covered by exactly one predicted instance with IoU > 0.5.
    matched: f64,
    /// Mean number of predicted instances covering ≥ 15 % of a cell.
    pieces: f64,
}

fn measure(p: &Prediction, truth: &Grid<u32>, params: &ClusterParams) -> Measures {
    let mut cells: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, &v) in truth.data.iter().enumerate() {
        if v != 0 {
            cells.entry(v).or_default().push(i);
        }
    }
    cells.retain(|_, px| px.len() >= 40);
    let (mut rx, mut ry) = (Vec::new(), Vec::new());
    for px in cells.values() {
        let xs: Vec<f32> = px.iter().map(|&i| (i % truth.width) as f32).collect();
        let ys: Vec<f32> = px.iter().map(|&i| (i / truth.width) as f32).collect();
        let exs: Vec<f32> = px.iter().map(|&i| p.ex[i]).collect();
        let eys: Vec<f32> = px.iter().map(|&i| p.ey[i]).collect();
        rx.push(std_dev(&exs) / std_dev(&xs));
        ry.push(std_dev(&eys) / std_dev(&ys));
    }
    let labels = cluster(p, params);
    let (mut matched, mut pieces) = (0usize, 0usize);
    for px in cells.values() {
        let mut counts: std::collections::HashMap<u32, usize> = Default::default();
        for &i in px {
            *counts.entry(labels.data[i]).or_default() += 1;
        }
        pieces += counts
            .iter()
            .filter(|(&l, &c)| l != 0 && c * 100 >= px.len() * 15)
            .count();
        let best = counts
            .iter()
            .filter(|(&l, _)| l != 0)
            .max_by_key(|(_, &c)| c);
        if let Some((&l, &inter)) = best {
            let predicted = labels.data.iter().filter(|&&v| v == l).count();
            if inter as f64 / (px.len() + predicted - inter) as f64 > 0.5 {
                matched += 1;
            }
        }
    }
    let n = cells.len() as f64;
    Measures {
        ratio_x: median(rx),
        ratio_y: median(ry),
        matched: matched as f64 / n,
        pieces: pieces as f64 / n,
    }
}

fn load_best(run_dir: &Path) -> BranchedErfnet {
    let w = Weights::new(DType::F32, &Device::Cpu);
    let net = BranchedErfnet::new(&w, 2, 0).unwrap();
    esx::train::checkpoint::load(&run_dir.join("checkpoints/best.safetensors"), &w, None).unwrap();
    net
}

#[test]
fn both_offset_axes_are_learned_and_cells_are_not_cut_into_bands() {
    let dir = tempfile::tempdir().unwrap();
    common::write_files(dir.path(), &[("axes.toml", EXPERIMENT)]);
    let out = common::succeeds(dir.path(), &["run", "axes.toml", "--json"]);
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "completed");
    let net = load_best(&dir.path().join(result["dir"].as_str().unwrap()));

    // Fresh frames (another seed) of the same kind of cells.
    let spec = SynthConfig {
        kind: SynthKind::Fluo,
        sequences: 1,
        frames: 3,
        size: 128,
        seed: 99,
    };
    let params = ClusterParams {
        seed_thresh: 0.9,
        fg_thresh: 0.5,
        min_size: 10,
    };
    let mut trained = Vec::new();
    let mut control = Vec::new();
    for t in 0..3 {
        let (raw, truth) = synth_frame(&spec, 1, t);
        let mut img = raw.to_f32();
        normalize(&mut img, Normalization::Percentile, 1.0, 99.8);
        let p = predict(&net, &img, &Device::Cpu).unwrap();
        trained.push(measure(&p, &truth, &params));
        // The seed's failure: no y offsets learned (embedded y = pixel y).
        let mut flat = p.clone();
        for i in 0..flat.ey.len() {
            flat.ey[i] = (i / flat.width) as f32;
        }
        control.push(measure(&flat, &truth, &params));
    }
    let mean =
        |v: &[Measures], f: fn(&Measures) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let (rx, ry) = (mean(&trained, |m| m.ratio_x), mean(&trained, |m| m.ratio_y));
    let (matched, pieces) = (mean(&trained, |m| m.matched), mean(&trained, |m| m.pieces));
    let (cy, cmatched, cpieces) = (
        mean(&control, |m| m.ratio_y),
        mean(&control, |m| m.matched),
        mean(&control, |m| m.pieces),
    );
    eprintln!("trained: spread ratio x {rx:.3} y {ry:.3}, cells matched {matched:.2}, pieces per cell {pieces:.2}");
    eprintln!(
        "control (no y offsets): ratio y {cy:.3}, matched {cmatched:.2}, pieces {cpieces:.2}"
    );

    // Contraction along each axis separately.
    assert!(
        rx < 0.5,
        "x embeddings do not contract: spread ratio {rx:.3}"
    );
    assert!(
        ry < 0.5,
        "y embeddings do not contract: spread ratio {ry:.3}"
    );
    // One instance per cell, no bands.
    assert!(
        matched >= 0.75,
        "only {matched:.2} of cells found as one instance"
    );
    assert!(
        pieces <= 1.25,
        "cells are split: {pieces:.2} pieces per cell"
    );
    // The same measures catch the seed's bug.
    assert!(
        cy > 0.9,
        "control: without y offsets the y spread must stay ({cy:.3})"
    );
    assert!(
        cpieces > pieces + 0.5 || cmatched < matched - 0.3,
        "control: bands must show ({cpieces:.2} pieces, {cmatched:.2} matched)"
    );
}
