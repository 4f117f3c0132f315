//! Training on the native backend (candle's ops: what a GPU runs) follows
//! the fused CPU backend step for step: the same losses from the same
//! initialisation, batches and dropout masks, through forward, loss,
//! backward, Adam and the running statistics.
//!
//! The learning rate is small on purpose: Adam's first steps move every
//! parameter by about lr·sign(g), so gradients at rounding level (1e-16 in
//! f64, 1e-7 in f32) take either sign and the runs part by ~lr in their
//! parameters, growing from step to step (at lr 1e-3: 1e-16, 3e-12, 2e-10,
//! …, in f64). At lr 1e-6 they stay at 1e-14 (f64) and 2e-5 (f32), while a
//! wiring fault shows at the lr scale (Adam without bias correction: 1e-4).

use candle_core::{DType, Device, Tensor};
use esx::backend::Backend;
use esx::bench::train::synthetic_batch;
use esx::loss::{EmbedSegLoss, LossWeights};
use esx::model::{BranchedErfnet, Mode, Weights};
use esx::train::adam::Adam;

/// The loss terms of `steps` training steps on two alternating batches.
fn losses(backend: Backend, dtype: DType, steps: usize) -> Vec<[f64; 4]> {
    let w = Weights::with_backend(dtype, &Device::Cpu, backend);
    let net = BranchedErfnet::new(&w, 2, 3).unwrap();
    w.init_pytorch(3).unwrap();
    w.init_output(2, 1.0).unwrap();
    let mut opt = Adam::new(w.trainable(), 1e-6, 1e-4, backend).unwrap();
    let weights = LossWeights {
        w_inst: 1.0,
        w_var: 10.0,
        w_seed: 1.0,
        foreground_weight: 10.0,
    };
    let loss = EmbedSegLoss::new(weights, 2, backend);
    let batches = [synthetic_batch(2, 64), synthetic_batch(3, 48)];
    (0..steps)
        .map(|step| {
            let (x, labels, centers) = &batches[step % 2];
            net.reseed_dropout(step as u64);
            let y = net
                .forward(&x.to_dtype(dtype).unwrap(), Mode::Train)
                .unwrap();
            let terms = loss.compute(&y, labels, centers, false).unwrap();
            let grads = terms.total.backward().unwrap();
            let g: Vec<Option<Tensor>> = opt.vars().map(|v| grads.get(v).cloned()).collect();
            opt.step(&g).unwrap();
            let v = terms.values().unwrap();
            [v.value, v.instance, v.var, v.seed]
        })
        .collect()
}

/// `terms` of the first `steps` steps agree to `tol`, relative.
fn check(dtype: DType, tol: f64, steps: usize, terms: usize) {
    let fused = losses(Backend::Fused, dtype, steps);
    let native = losses(Backend::Native, dtype, steps);
    for (step, (a, b)) in native.iter().zip(&fused).enumerate() {
        let names = ["total", "instance", "var", "seed"];
        for (term, (x, y)) in names.iter().zip(a.iter().zip(b)).take(terms) {
            let e = (x - y).abs() / y.abs().max(1e-12);
            assert!(
                e <= tol,
                "{dtype:?} step {step} {term}: native {x} vs fused {y} ({e:e})"
            );
        }
    }
}

#[test]
fn native_training_follows_the_fused_backend_in_f64() {
    check(DType::F64, 1e-9, 6, 4);
}

#[test]
fn native_training_follows_the_fused_backend_in_f32() {
    // The small terms (var ~4e-4) carry f32's cancellation: the total here.
    check(DType::F32, 1e-4, 4, 1);
}
