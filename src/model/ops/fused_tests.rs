//! The fused CPU ops against candle's own ops (the path other devices take)
//! and against finite differences, in f64, on odd shapes.

use std::sync::{Arc, Mutex};

use candle_core::{Tensor, Var};

use super::batch_norm::{batch_norm_act, batch_norm_add_relu, BnConfig};
use super::check::{check_grads, rand_tensor};
use super::conv::conv2d;
use super::im2col::Geom;

fn cfg(running: Option<(Vec<f64>, Vec<f64>)>, relu: bool, mask: Option<Vec<f64>>) -> BnConfig {
    BnConfig {
        eps: 1e-3,
        relu,
        running,
        mask: mask.map(Arc::new),
        stats: Arc::new(Mutex::new(None)),
    }
}

/// Batch norm from candle's ops: (x − μ)/√(σ²+ε)·γ + β.
fn reference_bn(x: &Tensor, gb: &Tensor, running: Option<(Vec<f64>, Vec<f64>)>) -> Tensor {
    let c = x.dim(1).unwrap();
    let ch = |t: &Tensor| t.reshape((1, c, 1, 1)).unwrap();
    let (mean, var) = match running {
        None => {
            let m = x
                .mean_keepdim(0)
                .unwrap()
                .mean_keepdim(2)
                .unwrap()
                .mean_keepdim(3)
                .unwrap();
            let v = x.broadcast_sub(&m).unwrap().sqr().unwrap();
            let v = v
                .mean_keepdim(0)
                .unwrap()
                .mean_keepdim(2)
                .unwrap()
                .mean_keepdim(3)
                .unwrap();
            (m, v)
        }
        Some((m, v)) => (
            ch(&Tensor::new(m.as_slice(), x.device()).unwrap()),
            ch(&Tensor::new(v.as_slice(), x.device()).unwrap()),
        ),
    };
    let g = ch(&gb.get(0).unwrap());
    let b = ch(&gb.get(1).unwrap());
    x.broadcast_sub(&mean)
        .unwrap()
        .broadcast_div(&(var + 1e-3).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(&g)
        .unwrap()
        .broadcast_add(&b)
        .unwrap()
}

fn weighted(y: &Tensor, seed: u64) -> Tensor {
    (y * rand_tensor(y.dims(), seed))
        .unwrap()
        .sum_all()
        .unwrap()
}

fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(d < 1e-10, "{what}: max difference {d:e}");
}

fn running(c: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    Some((
        (0..c).map(|i| 0.1 * i as f64 - 0.2).collect(),
        (0..c).map(|i| 0.5 + 0.1 * i as f64).collect(),
    ))
}

#[test]
fn batch_norm_act_matches_candle_ops_and_their_gradients() {
    for (train, relu) in [(true, true), (true, false), (false, true)] {
        let x = Var::from_tensor(&rand_tensor(&[3, 4, 5, 7], 1)).unwrap();
        let gb = Var::from_tensor(&(rand_tensor(&[2, 4], 2) + 1.0).unwrap()).unwrap();
        let run = if train { None } else { running(4) };
        let fused = batch_norm_act(&x, &gb, cfg(run.clone(), relu, None)).unwrap();
        let mut reference = reference_bn(&x, &gb, run);
        if relu {
            reference = reference.relu().unwrap();
        }
        assert_close(&fused, &reference, "forward");
        let gf = weighted(&fused, 3).backward().unwrap();
        let gr = weighted(&reference, 3).backward().unwrap();
        assert_close(gf.get(&x).unwrap(), gr.get(&x).unwrap(), "dx");
        assert_close(gf.get(&gb).unwrap(), gr.get(&gb).unwrap(), "dγβ");
    }
}

#[test]
fn batch_norm_add_relu_with_dropout_matches_candle_ops() {
    let x = Var::from_tensor(&rand_tensor(&[2, 3, 6, 5], 4)).unwrap();
    let r = Var::from_tensor(&rand_tensor(&[2, 3, 6, 5], 5)).unwrap();
    let gb = Var::from_tensor(&(rand_tensor(&[2, 3], 6) + 1.0).unwrap()).unwrap();
    let mask = vec![1.0 / 0.7, 0.0, 1.0 / 0.7, 1.0 / 0.7, 1.0 / 0.7, 0.0];
    let fused = batch_norm_add_relu(&x, &gb, &r, cfg(None, true, Some(mask.clone()))).unwrap();
    let m = Tensor::from_vec(mask, (2, 3, 1, 1), x.device()).unwrap();
    let reference = (reference_bn(&x, &gb, None).broadcast_mul(&m).unwrap() + r.as_tensor())
        .unwrap()
        .relu()
        .unwrap();
    assert_close(&fused, &reference, "forward");
    let gf = weighted(&fused, 7).backward().unwrap();
    let gr = weighted(&reference, 7).backward().unwrap();
    for (v, name) in [(&x, "dx"), (&gb, "dγβ"), (&r, "dresidual")] {
        assert_close(gf.get(v).unwrap(), gr.get(v).unwrap(), name);
    }
}

#[test]
fn fused_batch_norm_matches_finite_differences() {
    let x = Var::from_tensor(&rand_tensor(&[2, 3, 3, 5], 8)).unwrap();
    let r = Var::from_tensor(&rand_tensor(&[2, 3, 3, 5], 9)).unwrap();
    let gb = Var::from_tensor(&(rand_tensor(&[2, 3], 10) + 1.0).unwrap()).unwrap();
    let f = || {
        weighted(
            &batch_norm_add_relu(&x, &gb, &r, cfg(None, true, None)).unwrap(),
            11,
        )
    };
    check_grads(&[x.clone(), gb.clone(), r.clone()], f, 90, 1e-6);
}

#[test]
fn batch_statistics_are_reported_for_the_running_update() {
    let x = rand_tensor(&[2, 2, 3, 3], 12);
    let gb = Tensor::ones((2, 2), candle_core::DType::F64, x.device()).unwrap();
    let c = cfg(None, false, None);
    batch_norm_act(&x, &gb, c.clone()).unwrap();
    let (mean, var) = c.stats.lock().unwrap().clone().unwrap();
    let v: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
    let ch0: Vec<f64> = (0..2)
        .flat_map(|i| v[i * 18..i * 18 + 9].to_vec())
        .collect();
    let m = ch0.iter().sum::<f64>() / 18.0;
    let var0 = ch0.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 18.0;
    assert!((mean[0] - m).abs() < 1e-14 && (var[0] - var0).abs() < 1e-14);
}

#[test]
fn conv_with_fused_relu_matches_conv_then_relu() {
    let x = Var::from_tensor(&rand_tensor(&[2, 3, 7, 6], 13)).unwrap();
    let w = Var::from_tensor(&rand_tensor(&[4, 3, 3, 1], 14)).unwrap();
    let b = Var::from_tensor(&rand_tensor(&[4], 15)).unwrap();
    let g = Geom::kernel(3, 1).pad(2, 0).dilate(2, 1);
    let fused = conv2d(&x, &w, &b, g, true).unwrap();
    let reference = conv2d(&x, &w, &b, g, false).unwrap().relu().unwrap();
    assert_close(&fused, &reference, "forward");
    let gf = weighted(&fused, 16).backward().unwrap();
    let gr = weighted(&reference, 16).backward().unwrap();
    for v in [&x, &w, &b] {
        assert_close(gf.get(v).unwrap(), gr.get(v).unwrap(), "gradient");
    }
}

/// The f32 path (lane sums, f32 arithmetic per element) against the same op
/// in f64, on planes longer than one summation block.
#[test]
fn batch_norm_in_f32_stays_at_rounding_level_of_f64() {
    use candle_core::DType;
    let shape = [2, 3, 40, 37];
    let x = rand_tensor(&shape, 20).affine(3.0, 5.0).unwrap();
    let r = rand_tensor(&shape, 21);
    let gb = (rand_tensor(&[2, 3], 22) + 1.0).unwrap();
    let weights = rand_tensor(&shape, 23);
    let mask = vec![1.0 / 0.7, 0.0, 1.0 / 0.7, 1.0 / 0.7, 1.0 / 0.7, 1.0 / 0.7];
    let run = |dtype: DType, add: bool, running: Option<(Vec<f64>, Vec<f64>)>| {
        let v = |t: &Tensor| Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap();
        let (x, r, gb) = (v(&x), v(&r), v(&gb));
        let y = if add {
            batch_norm_add_relu(&x, &gb, &r, cfg(running, true, Some(mask.clone())))
        } else {
            batch_norm_act(&x, &gb, cfg(running, true, None))
        }
        .unwrap();
        let loss = (&y * &weights.to_dtype(dtype).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let host = |t: &Tensor| -> Vec<f64> {
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let mut out = vec![
            host(&y),
            host(grads.get(&x).unwrap()),
            host(grads.get(&gb).unwrap()),
        ];
        if add {
            out.push(host(grads.get(&r).unwrap()));
        }
        out
    };
    for (add, running) in [(false, None), (true, None), (false, running(3))] {
        let (single, double) = (
            run(DType::F32, add, running.clone()),
            run(DType::F64, add, running),
        );
        for (what, (s, d)) in ["y", "dx", "dγβ", "dresidual"]
            .iter()
            .zip(single.iter().zip(&double))
        {
            let scale = d.iter().map(|v| v.abs()).fold(0.0f64, f64::max).max(1e-3);
            let err = s
                .iter()
                .zip(d)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            // Seen: at most 2.2e-7 of the scale.
            assert!(
                err < 2e-6 * scale,
                "{what} (add {add}): error {err:e} of {scale:e}"
            );
        }
    }
}

/// γβ's gradient lives until the optimiser's step: it must not be a view
/// that keeps the layer's whole backward buffer alive (it was, once candle's
/// backprop stopped copying first gradients: +25 % peak memory).
#[test]
fn the_gamma_beta_gradient_does_not_hold_the_backward_buffer() {
    let x = Var::from_tensor(&rand_tensor(&[2, 3, 8, 8], 30)).unwrap();
    let r = rand_tensor(&[2, 3, 8, 8], 31);
    let gb = Var::from_tensor(&(rand_tensor(&[2, 3], 32) + 1.0).unwrap()).unwrap();
    for add in [false, true] {
        let y = if add {
            batch_norm_add_relu(&x, &gb, &r, cfg(None, true, None))
        } else {
            batch_norm_act(&x, &gb, cfg(None, true, None))
        }
        .unwrap();
        let grads = weighted(&y, 33).backward().unwrap();
        let g = grads.get(&gb).unwrap();
        let (storage, _) = g.storage_and_layout();
        let held = match &*storage {
            candle_core::Storage::Cpu(candle_core::CpuStorage::F64(v)) => v.len(),
            _ => panic!("expected f64 CPU storage"),
        };
        assert_eq!(held, g.elem_count(), "add {add}");
    }
}
