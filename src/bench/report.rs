//! `esx bench report`: `esx report` end to end over many long runs. The runs
//! are written through the real store writer with training-like curves
//! (noisy, decaying, with spikes), a sweep membership, validation metrics
//! every epoch and training pictures drawn by `viz` from a synthetic frame.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rayon::prelude::*;

use super::Figure;
use crate::config::{SynthConfig, SynthKind};
use crate::data::Grid;
use crate::infer::cluster::{cluster, ClusterParams};
use crate::prediction::Prediction;
use crate::store::{NewRun, Outcome, RunWriter, SweepMembership};
use crate::viz;

pub struct ReportBench {
    pub runs: usize,
    /// Metric rows per run.
    pub points: usize,
    pub exe: PathBuf,
    /// Leave the runs and the report here instead of in a temporary folder.
    pub keep: Option<PathBuf>,
}

/// Epochs of each fake run; pictures at the last two multiples of 25.
const EPOCHS: usize = 50;

/// A fixed pseudo-random stream (xorshift), so that the fake runs are the
/// same on every machine.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The seven training pictures of one fake run: a synthetic frame, an
/// embedding that points at each cell's centre with run-dependent scatter.
fn pictures(run: usize) -> Vec<(&'static str, Vec<u8>)> {
    let spec = SynthConfig {
        kind: SynthKind::Fluo,
        sequences: 1,
        frames: 1,
        size: 128,
        seed: 3 + run as u64 % 5,
    };
    let (raw, truth) = crate::data::synth::synth_frame(&spec, 0, 0);
    let mut image = raw.to_f32();
    crate::data::normalize::normalize(
        &mut image,
        crate::config::Normalization::Percentile,
        1.0,
        99.8,
    );
    let (w, h) = (truth.width, truth.height);
    let mut sums: std::collections::HashMap<u32, (f32, f32, f32)> = Default::default();
    for (i, &id) in truth.data.iter().enumerate() {
        if id > 0 {
            let e = sums.entry(id).or_default();
            e.0 += (i % w) as f32;
            e.1 += (i / w) as f32;
            e.2 += 1.0;
        }
    }
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15 ^ run as u64);
    let spread = 0.5 + 4.0 * (run % 7) as f32 / 7.0;
    let mut p = Prediction::empty(w, h, 2);
    // A clustering radius of about 3 px, as a trained network gives.
    let pixel = crate::loss::xym::PIXEL;
    let sigma = (((std::f64::consts::LN_2 / 9.0) / (pixel * pixel)).ln() / 10.0) as f32;
    let mut centers = Grid::filled(w, h, 0u32);
    for i in 0..w * h {
        let (x, y) = ((i % w) as f32, (i / w) as f32);
        let id = truth.data[i];
        let jitter = |n: &mut Noise| (n.next() as f32 - 0.5) * spread;
        let (cx, cy) = match sums.get(&id) {
            Some(&(sx, sy, c)) if id > 0 => (sx / c, sy / c),
            _ => (x, y),
        };
        p.ex[i] = cx + jitter(&mut noise);
        p.ey[i] = cy + jitter(&mut noise);
        p.sigma[0][i] = sigma + 0.02 * noise.next() as f32;
        p.sigma[1][i] = sigma + 0.02 * noise.next() as f32;
        p.seed[i] = if id > 0 {
            0.6 + 0.4 * noise.next() as f32
        } else {
            0.1 * noise.next() as f32
        };
    }
    for (&id, &(sx, sy, c)) in &sums {
        let (x, y) = ((sx / c) as usize, (sy / c) as usize);
        centers.data[y.min(h - 1) * w + x.min(w - 1)] = id;
    }
    let labels = cluster(
        &p,
        &ClusterParams::from_config(&crate::config::ClusterConfig::default()),
    );
    viz::training_pictures(&viz::Sample {
        image: &image,
        prediction: &p,
        labels: &labels,
        truth: Some(&truth),
        centers: Some(&centers),
    })
    .iter()
    .map(|pic| (pic.kind, viz::encode_png(&pic.image())))
    .collect()
}

/// Writes `runs` fake runs of about `points` metric rows each under `root`,
/// as one sweep over lr and model.sigma_init; every tenth run fails.
pub fn fake_runs(
    root: &Path,
    runs: usize,
    points: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let per_epoch_rows = 7 + 7;
    let steps = (points.saturating_sub(per_epoch_rows * EPOCHS) / 4).max(EPOCHS);
    let sweep_dir = root.join("benchswp");
    let pictures: Vec<_> = (0..7).map(pictures).collect();
    (0..runs).into_par_iter().try_for_each(|r| {
        let lr: f64 = [1e-4, 3e-4, 1e-3, 3e-3][r % 4];
        let sigma_init: f64 = [0.5, 1.0, 1.5][(r / 4) % 3];
        let mut swept = serde_json::Map::new();
        swept.insert("lr".into(), lr.into());
        swept.insert("model.sigma_init".into(), sigma_init.into());
        let new = NewRun {
            name: format!("bench-{r}"),
            config_toml: format!(
                "name = \"bench-{r}\"\nseed = {r}\nlr = {lr}\nepochs = {EPOCHS}\n[model]\nsigma_init = {sigma_init}\n[data]\nroot = \"data/bench\"\n"
            ),
            sweep: Some(SweepMembership {
                id: "benchswp".into(),
                index: r,
                swept,
            }),
            ..NewRun::default()
        };
        let mut w = RunWriter::create(&sweep_dir, Some(&r.to_string()), &new)?;
        let mut noise = Noise(0x2545_f491_4f6c_dd1d ^ (r as u64 + 1));
        // Best near lr 1e-3 and sigma_init 1, as a sweep would find.
        let quality = 1.0 - 0.5 * (lr.log10() + 3.0).abs() - 0.4 * (sigma_init - 1.0).abs();
        let rate = 0.3 + quality + 0.3 * noise.next();
        let per_epoch = steps / EPOCHS;
        for s in 1..=steps as u64 {
            let t = s as f64 / steps as f64;
            let base = 0.4 + 2.0 * (-t * 6.0 * rate).exp();
            let spike = if noise.next() < 0.002 { 3.0 } else { 1.0 };
            let epoch = ((s as usize - 1) / per_epoch + 1).min(EPOCHS) as u32;
            for (key, scale) in [("loss", 1.0), ("inst", 0.6), ("var", 0.01), ("seed", 0.3)] {
                let v = base * scale * spike * (1.0 + 0.25 * (noise.next() - 0.5));
                w.log_scalar(s, epoch, "step", key, v)?;
            }
            if (s as usize).is_multiple_of(per_epoch) && (epoch as usize) <= EPOCHS {
                let e = epoch as f64 / EPOCHS as f64;
                for (split, key, v) in [
                    ("train", "loss", base),
                    ("train", "inst", base * 0.6),
                    ("train", "var", base * 0.01),
                    ("train", "seed", base * 0.3),
                    ("train", "lr", lr * (1.0 - e).powf(0.9)),
                    ("train", "images_per_s", 3.0),
                    ("train", "seconds", 60.0),
                    ("val", "loss", base * 1.1),
                    ("val", "inst", base * 0.66),
                    ("val", "var", base * 0.011),
                    ("val", "seed", base * 0.33),
                    ("val", "iou", 0.8 - 0.5 * (-e * 4.0 * rate).exp()),
                    ("val", "ap50", 0.9 - 0.6 * (-e * 4.0 * rate).exp()),
                    ("val", "seg", 0.75 - 0.5 * (-e * 4.0 * rate).exp()),
                ] {
                    w.log_scalar(s, epoch, split, key, v)?;
                }
                if (epoch as usize).is_multiple_of(25) {
                    for (kind, png) in &pictures[r % pictures.len()] {
                        w.log_image(epoch, kind, png)?;
                    }
                }
            }
        }
        w.finish(if r % 10 == 9 {
            Outcome::Failed(format!("loss is NaN at step {steps} (term var)"))
        } else {
            Outcome::Completed
        })?;
        Ok(())
    })
}

pub fn run(opts: &ReportBench) -> Result<Vec<Figure>, Box<dyn std::error::Error + Send + Sync>> {
    let scratch = tempfile::tempdir()?;
    let base = opts
        .keep
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    if base.join("runs").exists() {
        return Err(format!(
            "{} exists; give --keep an empty folder",
            base.join("runs").display()
        )
        .into());
    }
    let root = base.join("runs");
    let start = Instant::now();
    fake_runs(&root, opts.runs, opts.points)?;
    let setup = start.elapsed().as_secs_f64();
    let rows: usize = crate::store::query::scan(&root)?
        .iter()
        .map(|d| crate::store::query::metrics(d, None).map(|m| m.len()))
        .sum::<Result<usize, _>>()?;
    let out = base.join("report.html");
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let status = Command::new(&opts.exe)
            .arg("report")
            .arg(&root)
            .arg("--out")
            .arg(&out)
            .output()?;
        times.push(t.elapsed().as_secs_f64());
        if !status.status.success() {
            return Err(String::from_utf8_lossy(&status.stderr).into_owned().into());
        }
    }
    times.sort_by(f64::total_cmp);
    let bytes = std::fs::metadata(&out)?.len() as f64;
    let detail = format!(
        "{} runs, {:.0} metric rows each ({rows} in all), 14 pictures each; written in {setup:.1} s",
        opts.runs,
        rows as f64 / opts.runs.max(1) as f64
    );
    Ok(vec![
        Figure {
            name: "esx report, end to end".into(),
            value: times[1],
            unit: "s".into(),
            target: Some("< 3 s".into()),
            detail: format!("median of 3; {detail}"),
        },
        Figure {
            name: "report size".into(),
            value: bytes / 1e6,
            unit: "MB".into(),
            target: Some("< 20 MB".into()),
            detail: "one HTML file: inline SVG charts, PNG pictures of the 30 best runs".into(),
        },
    ])
}
