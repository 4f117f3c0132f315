//! The device-resident loss (candle's ops, as CUDA runs it) against the
//! fused CPU op training uses on the CPU: values, terms, IoUs and gradients,
//! in f64 to 1e-9 and in f32 to 1e-4 (relative), on images large enough that
//! the rows' sort goes through its chunked merge; and against finite
//! differences.

use candle_core::{DType, Tensor, Var};

use super::{embedseg_loss_fused, embedseg_loss_native, LossWeights};
use crate::data::instances::InstanceTable;
use crate::model::ops::check::{check_grads_step, rand_tensor};

/// `n` h×w images: blobs of several sizes (some touching, some with a
/// marked centre), and one image with no instance at all.
fn targets(n: usize, h: usize, w: usize) -> (Vec<u32>, Vec<u32>) {
    let p = h * w;
    let mut labels = vec![0u32; n * p];
    let mut centers = vec![0u32; n * p];
    for b in 0..n.saturating_sub(1) {
        let blobs = [
            (h / 4, w / 4, h / 6, 11),
            (h / 2, w / 2 + b, h / 5, 3),
            (3 * h / 4, w / 5, h / 8, 8),
        ];
        for (k, &(cy, cx, r, id)) in blobs.iter().enumerate() {
            for y in 0..h {
                for x in 0..w {
                    let (dy, dx) = (y as isize - cy as isize, x as isize - cx as isize);
                    if dy * dy + dx * dx <= (r * r) as isize {
                        labels[b * p + y * w + x] = id;
                    }
                }
            }
            if k != 1 {
                centers[b * p + cy * w + cx] = id;
            }
        }
    }
    (labels, centers)
}

fn prediction(n: usize, n_sigma: usize, h: usize, w: usize, seed: u64) -> Tensor {
    Tensor::cat(
        &[
            &(rand_tensor(&[n, 2, h, w], seed) * 0.02).unwrap(),
            &rand_tensor(&[n, n_sigma, h, w], seed + 1)
                .affine(0.1, 0.45)
                .unwrap(),
            &rand_tensor(&[n, 1, h, w], seed + 2),
        ],
        1,
    )
    .unwrap()
}

fn weights() -> LossWeights {
    LossWeights {
        w_inst: 1.0,
        w_var: 10.0,
        w_seed: 1.0,
        foreground_weight: 10.0,
    }
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// max |a − b| / max |b|
fn relative_max(a: &Tensor, b: &Tensor) -> f64 {
    let flat = |t: &Tensor| -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let (a, b) = (flat(a), flat(b));
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn compare(dtype: DType, tol: f64, n: usize, h: usize, w: usize) {
    let (labels, centers) = targets(n, h, w);
    for n_sigma in [1, 2] {
        let p = Var::from_tensor(
            &prediction(n, n_sigma, h, w, 7 * n_sigma as u64)
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap();
        let fused = embedseg_loss_fused(&p, &labels, &centers, n_sigma, &weights()).unwrap();
        // The table as the loader builds it: the same as found here.
        let table = InstanceTable::of(&labels, &centers, n, h, w);
        let native = embedseg_loss_native(
            &p,
            &labels,
            &centers,
            Some(&table),
            n_sigma,
            &weights(),
            true,
        )
        .unwrap();
        let (nv, fv) = (native.values().unwrap(), fused.values().unwrap());
        for (name, a, b) in [
            ("total", nv.value, fv.value),
            ("instance", nv.instance, fv.instance),
            ("var", nv.var, fv.var),
            ("seed", nv.seed, fv.seed),
        ] {
            assert!(
                relative(a, b) <= tol,
                "{dtype:?} n_sigma {n_sigma} {name}: native {a} vs fused {b}"
            );
        }
        let on_graph = native
            .total
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(relative(on_graph, fv.value) <= tol);
        assert_eq!(native.ious.len(), fused.ious.len());
        for (a, b) in native.ious.iter().zip(&fused.ious) {
            assert!((a - b).abs() <= 1e-3, "IoU {a} vs {b}");
        }
        let ga = native.total.backward().unwrap();
        let gb = fused.total.backward().unwrap();
        let (ga, gb) = (ga.get(&p).unwrap(), gb.get(&p).unwrap());
        // In f32 too, element by element: the sort keys are f64 (else pixels
        // with a near-tied neighbour swap ranks: ~6e-4 here), the Lovász
        // weights written without cancellation (else ~1e-4).
        let e = relative_max(ga, gb);
        assert!(
            e <= tol,
            "{dtype:?} n_sigma {n_sigma}: gradients differ by {e:e}"
        );
    }
}

#[test]
fn native_equals_fused_in_f64() {
    // 4 × 100×96: 9,600 pixels a row, past one sort chunk (8,192).
    compare(DType::F64, 1e-9, 4, 100, 96);
}

#[test]
fn native_equals_fused_in_f32() {
    compare(DType::F32, 1e-4, 3, 64, 48);
}

#[test]
fn native_loss_of_a_batch_without_instances_is_the_seed_term() {
    let (labels, centers) = (vec![0u32; 2 * 64], vec![0u32; 2 * 64]);
    let p = prediction(2, 2, 8, 8, 3);
    let native = embedseg_loss_native(&p, &labels, &centers, None, 2, &weights(), true).unwrap();
    let fused = embedseg_loss_fused(&p, &labels, &centers, 2, &weights()).unwrap();
    let (nv, fv) = (native.values().unwrap(), fused.values().unwrap());
    assert_eq!((nv.instance, nv.var), (0.0, 0.0));
    assert!(native.ious.is_empty());
    assert!(relative(nv.seed, fv.seed) < 1e-12 && nv.seed > 0.0);
}

#[test]
fn native_gradient_matches_finite_differences() {
    let (labels, centers) = targets(3, 12, 10);
    let pred = Var::from_tensor(&prediction(3, 2, 12, 10, 11)).unwrap();
    let no_seed = LossWeights {
        w_seed: 0.0,
        ..weights()
    };
    check_grads_step(
        std::slice::from_ref(&pred),
        || {
            embedseg_loss_native(&pred, &labels, &centers, None, 2, &no_seed, false)
                .unwrap()
                .total
        },
        300,
        1e-5,
        1e-8,
    );
}
