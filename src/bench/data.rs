//! `esx bench data`: instance centres over many frames, one big medoid, and
//! training-batch throughput.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::{median_time, Figure};
use crate::config::{Annotations, CenterMethod, Normalization, SynthConfig, SynthKind};
use crate::data::batches::{epoch_order, Augment, BatchStream};
use crate::data::centers::centers;
use crate::data::crops::{load_crop_list, prepare_crops, CropSpec};
use crate::data::medoid::medoid;
use crate::data::medoid_3d::{medoid_3d, Point};
use crate::data::synth::{synth_frame, synthesize};
use crate::data::DataError;
use crate::progress::Reporter;

pub struct DataBench {
    pub frames: usize,
    pub frame_size: usize,
    pub batch: usize,
    pub crop: usize,
    pub batches: usize,
}

pub fn run(opts: &DataBench, scratch: &Path) -> Result<Vec<Figure>, DataError> {
    let mut figures = centres(opts);
    figures.push(big_medoid());
    figures.push(big_medoid_3d());
    figures.push(batches(opts, scratch)?);
    Ok(figures)
}

fn centres(opts: &DataBench) -> Vec<Figure> {
    let spec = SynthConfig {
        kind: SynthKind::Fluo,
        sequences: 1,
        frames: opts.frames,
        size: opts.frame_size,
        seed: 11,
    };
    let labels: Vec<_> = (0..opts.frames)
        .into_par_iter()
        .map(|t| synth_frame(&spec, 1, t).1)
        .collect();
    let cells: usize = labels
        .iter()
        .map(|l| {
            l.data
                .iter()
                .copied()
                .filter(|&v| v > 0)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .sum();
    [CenterMethod::Medoid, CenterMethod::ApproxMedoid]
        .into_iter()
        .map(|method| {
            let t = Instant::now();
            let n: usize = labels.par_iter().map(|l| centers(l, method).len()).sum();
            let secs = t.elapsed().as_secs_f64();
            Figure {
                name: format!("centres, {method:?}"),
                value: secs,
                unit: "s".into(),
                target: None,
                detail: format!(
                    "{} frames {}×{}, {n} instances ({:.0}/frame), all threads",
                    opts.frames,
                    opts.frame_size,
                    opts.frame_size,
                    cells as f64 / opts.frames as f64
                ),
            }
        })
        .collect()
}

fn big_medoid() -> Figure {
    // An irregular blob of about 20,000 pixels: an ellipse with a bite out of it.
    let mut ys = Vec::new();
    let mut xs = Vec::new();
    for y in -90i32..=90 {
        for x in -110i32..=110 {
            let inside = (y as f64 / 72.0).powi(2) + (x as f64 / 95.0).powi(2) <= 1.0;
            let bite = ((y - 40) as f64).powi(2) + ((x - 60) as f64).powi(2) < 30.0f64.powi(2);
            if inside && !bite {
                ys.push(y as f64);
                xs.push(x as f64);
            }
        }
    }
    let n = ys.len();
    let t = median_time(7, || {
        std::hint::black_box(medoid(&ys, &xs));
    });
    Figure {
        name: format!("exact medoid, {n} pixels"),
        value: t.as_secs_f64() * 1e3,
        unit: "ms".into(),
        target: Some("< 50 ms".into()),
        detail: format!(
            "one instance, one thread; brute force is {:.1e} distances",
            (n * n) as f64
        ),
    }
}

fn big_medoid_3d() -> Figure {
    // An irregular nucleus of about 100,000 voxels, z spacing 2.5× xy: an
    // ellipsoid with a bite out of it.
    let anisotropy = 2.5;
    let mut points: Vec<Point> = Vec::new();
    for z in -16i32..=16 {
        for y in -40i32..=40 {
            for x in -50i32..=50 {
                let zf = z as f64 * anisotropy;
                let inside =
                    (zf / 40.0).powi(2) + (y as f64 / 38.0).powi(2) + (x as f64 / 48.0).powi(2)
                        <= 1.0;
                let bite =
                    (zf - 10.0).powi(2) + ((y - 20) as f64).powi(2) + ((x - 25) as f64).powi(2)
                        < 18.0f64.powi(2);
                if inside && !bite {
                    points.push([zf, y as f64, x as f64]);
                }
            }
        }
    }
    let n = points.len();
    let t = median_time(5, || {
        std::hint::black_box(medoid_3d(&points));
    });
    Figure {
        name: format!("exact 3D medoid, {n} voxels"),
        value: t.as_secs_f64() * 1e3,
        unit: "ms".into(),
        target: Some("< 500 ms".into()),
        detail: format!(
            "one instance, anisotropy {anisotropy}, one thread; brute force is {:.1e} distances",
            (n * n) as f64
        ),
    }
}

fn batches(opts: &DataBench, scratch: &Path) -> Result<Figure, DataError> {
    let root = scratch.join("bench-data");
    let spec = SynthConfig {
        kind: SynthKind::Fluo,
        sequences: 1,
        frames: 4,
        size: 512,
        seed: 3,
    };
    let quiet = Reporter::silent();
    synthesize(&root, &spec, &quiet)?;
    let crop = CropSpec {
        crop_size: opts.crop,
        center: CenterMethod::Medoid,
        annotations: Annotations::Gt,
        normalization: Normalization::Percentile,
        pmin: 1.0,
        pmax: 99.8,
        pad: true,
    };
    let report = prepare_crops(&root, &["01".to_string()], &crop, &quiet)?;
    let items = Arc::new(load_crop_list(&report.dir)?);
    let all: Vec<usize> = (0..items.len()).collect();
    let order = epoch_order(&all, opts.batch, opts.batches, 1, 0);
    let aug = Augment {
        dihedral: true,
        intensity: true,
    };
    let t = Instant::now();
    let mut n = 0;
    for b in BatchStream::start(items, order, opts.batch, aug, 1, 0, 0, 4) {
        std::hint::black_box(b?);
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(Figure {
        name: format!("training batches {}×{}², augmented", opts.batch, opts.crop),
        value: n as f64 / secs,
        unit: "batch/s".into(),
        target: Some("≥ 10× training steps/s".into()),
        detail: format!(
            "{n} batches from TIFF crops, all threads, {:.0} images/s",
            (n * opts.batch) as f64 / secs
        ),
    })
}
