//! esx against EmbedSeg 0.2.5 itself: BranchedERFNet outputs (eval and train
//! mode), running statistics, parameter gradients, and every SpatialEmbLoss
//! term with its gradient — fixtures made by tools/reference/make_fixtures.py,
//! compared in float64.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use esx::backend::Backend;
use esx::loss::EmbedSegLoss;
use esx::model::{BranchedErfnet, Mode, Weights};

mod common;

fn load(name: &str) -> HashMap<String, Tensor> {
    common::Fixtures::new("embedseg").load(name)
}

fn reference() -> serde_json::Value {
    common::Fixtures::new("embedseg").reference()
}

/// The reference network in f64 on `backend`'s kernels, weights decoded
/// from their u8 codes.
fn reference_net(backend: Backend) -> (Weights, BranchedErfnet) {
    let w = Weights::with_backend(DType::F64, &Device::Cpu, backend);
    let net = BranchedErfnet::new(&w, 2, 0).unwrap();
    common::decode_weights(&w, &common::Fixtures::new("embedseg"));
    (w, net)
}

#[test]
fn branched_erfnet_matches_embedseg_in_eval_and_train_mode() {
    model_case(Backend::Fused);
}

/// candle's own ops, the device-resident path CUDA runs, give the same.
#[test]
fn the_candle_native_path_matches_embedseg_too() {
    model_case(Backend::Native);
}

fn model_case(backend: Backend) {
    let (w, net) = reference_net(backend);
    let out = load("model_outputs.safetensors");
    let x = out["input"].to_dtype(DType::F64).unwrap();

    let eval = net.forward(&x, Mode::Eval).unwrap();
    let e = common::rel_err(&eval, &out["out_eval"]);
    assert!(e < 1e-9, "eval output differs by {e:e}");
    // The inference network (batch norms folded into the convolutions).
    let folded = BranchedErfnet::for_inference(&w, 2)
        .unwrap()
        .forward(&x, Mode::Eval)
        .unwrap();
    let e = common::rel_err(&folded, &out["out_eval"]);
    assert!(e < 1e-9, "the folded network's output differs by {e:e}");

    let train = net.forward(&x, Mode::TrainNoDropout).unwrap();
    let e = common::rel_err(&train, &out["out_train"]);
    assert!(e < 1e-9, "train output differs by {e:e}");

    // Running statistics after one training forward pass, and parameter
    // gradients of Σ out · r.
    let (running, grads) = common::assert_running_and_grads(&w, &train, &out, 1e-9);
    assert!(running >= 6);
    assert_eq!(grads, 10);
}

fn loss_case(tag: &str, n_sigma: usize, backend: Backend) {
    let f = load(&format!("loss_{tag}.safetensors"));
    let want = &reference()[format!("loss_{tag}")];
    let (pred, labels, centers, w) = common::loss_inputs(&f);
    let terms = EmbedSegLoss::new(w, n_sigma, backend)
        .compute(&pred, &labels, &centers, false)
        .unwrap();
    let v = terms.values().unwrap();
    common::assert_terms(&v, want, &format!("{backend:?} {tag}"));
    let expected = want["total"].as_f64().unwrap();
    let on_graph = terms.total.to_scalar::<f64>().unwrap();
    assert!((on_graph - expected).abs() <= 1e-12 * expected.abs());
    let grads = terms.total.backward().unwrap();
    let e = common::rel_err(grads.get(&pred).unwrap(), &f["grad_total"]);
    assert!(e < 1e-10, "{backend:?} {tag} gradient differs by {e:e}");
}

#[test]
fn spatial_emb_loss_matches_embedseg_with_two_sigmas() {
    loss_case("n_sigma_2", 2, Backend::Fused);
    loss_case("n_sigma_2", 2, Backend::Native);
}

#[test]
fn spatial_emb_loss_matches_embedseg_with_one_sigma() {
    loss_case("n_sigma_1", 1, Backend::Fused);
    loss_case("n_sigma_1", 1, Backend::Native);
}
