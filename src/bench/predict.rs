//! `esx bench predict`: clustering alone on a synthetic 1024² prediction with
//! ~200 cells, and predict + cluster end to end on synthetic frames, each
//! beside EmbedSeg 0.2.5's own code (PyTorch) on the very same input when a
//! reference Python is given.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::train::{peak_rss_mb, reset_peak_rss, torch_figure, Torch};
use super::Figure;
use crate::config::{SynthConfig, SynthKind};
use crate::data::normalize::normalize;
use crate::data::synth::synthesize;
use crate::data::tiff_io::{read_image, read_labels};
use crate::data::Grid;
use crate::infer::{cluster, ClusterParams, PredictOptions, Prediction, Predictor};
use crate::loss::xym::PIXEL;
use crate::model::{load_for_inference, BranchedErfnet, Weights};
use crate::progress::Reporter;

pub struct PredictBench<'a> {
    pub sizes: &'a [usize],
    pub runs: usize,
    /// A trained checkpoint; without one the network is untrained and finds
    /// no seeds, so clustering has nothing to do.
    pub checkpoint: Option<&'a Path>,
}

const PARAMS: ClusterParams = ClusterParams {
    seed_thresh: 0.9,
    fg_thresh: 0.5,
    min_size: 10,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn count(labels: &Grid<u32>) -> usize {
    let mut ids: Vec<u32> = labels.data.iter().copied().filter(|&v| v > 0).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// A synthetic frame of `size`² (image normalised, labels).
fn frame(
    scratch: &Path,
    size: usize,
) -> Result<(Grid<f32>, Grid<u32>), Box<dyn std::error::Error>> {
    let root = scratch.join(format!("frame{size}"));
    let spec = SynthConfig {
        kind: SynthKind::Fluo,
        sequences: 1,
        frames: 1,
        size,
        seed: 11,
    };
    synthesize(&root, &spec, &Reporter::silent())?;
    let mut image = read_image(&root.join("01/t000.tif"))?.to_f32();
    normalize(
        &mut image,
        crate::config::Normalization::Percentile,
        1.0,
        99.8,
    );
    Ok((image, read_labels(&root.join("01_GT/SEG/man_seg000.tif"))?))
}

/// The raw output channels [offset x, offset y, sigma, sigma, seed logit] of
/// an ideal network on `labels`: every cell pixel points at its cell's
/// centroid (±0.5 px), bandwidth radius 3 px, seed highest at the centre.
fn ideal_output(labels: &Grid<u32>) -> Vec<f32> {
    let (w, h) = (labels.width, labels.height);
    let mut sums: std::collections::HashMap<u32, (f64, f64, f64)> = Default::default();
    for (i, &id) in labels.data.iter().enumerate() {
        if id > 0 {
            let e = sums.entry(id).or_default();
            e.0 += (i % w) as f64;
            e.1 += (i / w) as f64;
            e.2 += 1.0;
        }
    }
    let n = w * h;
    let mut raw = vec![0f32; 5 * n];
    let sigma = ((std::f64::consts::LN_2 / 9.0) / (PIXEL * PIXEL)).ln() / 10.0;
    for i in 0..n {
        let (x, y) = ((i % w) as f64, (i / w) as f64);
        raw[2 * n + i] = sigma as f32;
        raw[3 * n + i] = sigma as f32;
        let id = labels.data[i];
        if id == 0 {
            raw[4 * n + i] = -6.0;
            continue;
        }
        let (sx, sy, c) = sums[&id];
        let (cx, cy) = (sx / c, sy / c);
        let jitter = ((i as f64 * 0.618).fract() - 0.5) * 1.0;
        raw[i] = (((cx + jitter - x) * PIXEL).clamp(-0.999, 0.999)).atanh() as f32;
        raw[n + i] = (((cy - jitter - y) * PIXEL).clamp(-0.999, 0.999)).atanh() as f32;
        let d2 = (x - cx).powi(2) + (y - cy).powi(2);
        let seed = 0.55 + 0.44 * (-d2 / (c / 3.0)).exp();
        raw[4 * n + i] = (seed / (1.0 - seed)).ln() as f32;
    }
    raw
}

fn save(path: &Path, tensors: Vec<(&str, Tensor)>) -> candle_core::Result<()> {
    let map: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&map, path)
}

pub fn run(
    opts: &PredictBench,
    torch: Option<&Torch>,
) -> Result<Vec<Figure>, Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let threads = rayon::current_num_threads();
    let mut figures = Vec::new();

    // Clustering alone, on 200 of the frame's cells.
    let (_, mut labels) = frame(scratch.path(), 1024)?;
    let mut ids: Vec<u32> = labels.data.iter().copied().filter(|&v| v > 0).collect();
    ids.sort_unstable();
    ids.dedup();
    let keep: std::collections::HashSet<u32> = ids.into_iter().take(200).collect();
    for v in &mut labels.data {
        if !keep.contains(v) {
            *v = 0;
        }
    }
    let raw = ideal_output(&labels);
    let p = Prediction::from_output(&raw, 1024, 1024, 2);
    let mut found = 0;
    let t = median(
        (0..opts.runs.max(3))
            .map(|_| {
                let t = Instant::now();
                found = count(&cluster(&p, &PARAMS));
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    figures.push(Figure {
        name: "esx cluster 1024² (ideal prediction)".into(),
        value: t * 1e3,
        unit: "ms".into(),
        target: Some("< 50 ms".into()),
        detail: format!(
            "{} cells in the mask, {found} instances found",
            count(&labels)
        ),
    });
    if let Some(torch) = torch {
        let file = scratch.path().join("cluster.safetensors");
        save(
            &file,
            vec![(
                "output",
                Tensor::from_vec(raw, (5, 1024, 1024), &Device::Cpu)?,
            )],
        )?;
        let args = [
            "cluster".into(),
            file.display().to_string(),
            opts.runs.to_string(),
            threads.to_string(),
        ];
        figures.push(torch_figure(
            torch,
            &args,
            "torch cluster 1024² (EmbedSeg)".into(),
            |f| {
                (
                    f.cluster * 1e3,
                    "ms",
                    format!(
                        "{} instances found; esx is {:.1}× faster",
                        f.instances,
                        f.cluster / t
                    ),
                )
            },
        ));
    }

    // Predict + cluster end to end.
    let device = Device::Cpu;
    let (predictor, ckpt_name) = match opts.checkpoint {
        Some(path) => (
            Predictor::new(load_for_inference(path, &device)?.0, device.clone()),
            path.display().to_string(),
        ),
        None => {
            let w = Weights::new(DType::F32, &device);
            BranchedErfnet::new(&w, 2, 0)?;
            w.init_pytorch(0)?;
            w.init_output(2, 1.0)?;
            (
                Predictor::new(BranchedErfnet::for_inference(&w, 2)?, device.clone()),
                "untrained".into(),
            )
        }
    };
    let checkpoint_file = scratch.path().join("weights.safetensors");
    if let Some(path) = opts.checkpoint {
        std::fs::copy(path, &checkpoint_file)?;
    }
    for &size in opts.sizes {
        let (image, _) = frame(scratch.path(), size)?;
        reset_peak_rss();
        let (mut tp, mut tc, mut found) = (Vec::new(), Vec::new(), 0);
        for _ in 0..opts.runs + 1 {
            let t0 = Instant::now();
            let p = predictor.predict(
                &image,
                &PredictOptions {
                    tile: size.max(1024),
                    ..Default::default()
                },
            )?;
            let t1 = Instant::now();
            found = count(&cluster(&p, &PARAMS));
            tp.push((t1 - t0).as_secs_f64());
            tc.push(t1.elapsed().as_secs_f64());
        }
        tp.remove(0);
        tc.remove(0);
        let (fp, fc) = (median(tp), median(tc));
        let total = fp + fc;
        figures.push(Figure {
            name: format!("esx predict+cluster {size}²"),
            value: total * 1e3,
            unit: "ms".into(),
            target: None,
            detail: format!(
                "predict {:.0} ms, cluster {:.1} ms, {found} instances, {ckpt_name} model, peak RSS {:.0} MB",
                fp * 1e3,
                fc * 1e3,
                peak_rss_mb()
            ),
        });
        if let Some(torch) = torch {
            let file = scratch.path().join(format!("image{size}.safetensors"));
            save(
                &file,
                vec![(
                    "image",
                    Tensor::from_vec(image.data.clone(), (1, 1, size, size), &Device::Cpu)?,
                )],
            )?;
            let weights = if opts.checkpoint.is_some() {
                checkpoint_file.display().to_string()
            } else {
                "-".into()
            };
            let args = [
                "predict".into(),
                weights,
                file.display().to_string(),
                opts.runs.to_string(),
                threads.to_string(),
            ];
            figures.push(torch_figure(torch, &args, format!("torch predict+cluster {size}²"), |f| {
                let t = f.forward + f.cluster;
                (
                    t * 1e3,
                    "ms",
                    format!(
                        "predict {:.0} ms, cluster {:.1} ms, {} instances, peak RSS {:.0} MB; esx is {:.2}× faster",
                        f.forward * 1e3,
                        f.cluster * 1e3,
                        f.instances,
                        f.peak_rss_mb,
                        t / total
                    ),
                )
            }));
        }
    }
    Ok(figures)
}
