//! The fused loss against the graph one and against finite differences (f64).

use candle_core::{Tensor, Var};

use super::{embedseg_loss_fused as embedseg_loss, embedseg_loss_graph, LossWeights};
use crate::model::ops::check::{check_grads_step, rand_tensor};

/// Three 12×10 images with touching instances, marked and unmarked centres.
fn targets() -> (Vec<u32>, Vec<u32>) {
    let (h, w) = (12, 10);
    let mut labels = vec![0u32; 3 * h * w];
    let mut centers = vec![0u32; 3 * h * w];
    for b in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let i = b * h * w + y * w + x;
                if (2..6).contains(&y) && (1..5 + b).contains(&x) {
                    labels[i] = 4;
                }
                if (6..11).contains(&y) && (2..8).contains(&x) {
                    labels[i] = 9;
                }
            }
        }
        centers[b * h * w + 3 * w + 2] = 4;
    }
    (labels, centers)
}

fn weights() -> LossWeights {
    LossWeights {
        w_inst: 1.0,
        w_var: 10.0,
        w_seed: 1.0,
        foreground_weight: 10.0,
    }
}

#[test]
fn fused_equals_graph_in_value_terms_ious_and_gradient() {
    let (labels, centers) = targets();
    for n_sigma in [1, 2] {
        let offsets = (rand_tensor(&[3, 2, 12, 10], 4) * 0.01).unwrap();
        let sigma = rand_tensor(&[3, n_sigma, 12, 10], 2)
            .affine(0.2, 0.4)
            .unwrap();
        let seed = rand_tensor(&[3, 1, 12, 10], 3);
        let p = Var::from_tensor(&Tensor::cat(&[&offsets, &sigma, &seed], 1).unwrap()).unwrap();
        let a = embedseg_loss(&p, &labels, &centers, n_sigma, &weights()).unwrap();
        let b = embedseg_loss_graph(&p, &labels, &centers, n_sigma, &weights()).unwrap();
        let (ta, tb) = (
            a.total.to_scalar::<f64>().unwrap(),
            b.total.to_scalar::<f64>().unwrap(),
        );
        assert!((ta - tb).abs() < 1e-12 * tb.abs(), "total {ta} vs {tb}");
        let (va, vb) = (a.values().unwrap(), b.values().unwrap());
        for (x, y) in [
            (va.instance, vb.instance),
            (va.var, vb.var),
            (va.seed, vb.seed),
        ] {
            assert!((x - y).abs() < 1e-12 * y.abs().max(1e-12), "{x} vs {y}");
        }
        assert_eq!(a.ious, b.ious);
        let ga = a.total.backward().unwrap();
        let gb = b.total.backward().unwrap();
        let d = ga
            .get(&p)
            .unwrap()
            .sub(gb.get(&p).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-12, "n_sigma {n_sigma}: gradients differ by {d:e}");
    }
}

#[test]
fn fused_gradient_matches_finite_differences() {
    // Offsets and sigma through the instance and variance terms; the seed
    // channel through the seed term (φ is detached there, as in EmbedSeg).
    let (labels, centers) = targets();
    let pred = Var::from_tensor(
        &Tensor::cat(
            &[
                &(rand_tensor(&[3, 2, 12, 10], 4) * 0.01).unwrap(),
                &rand_tensor(&[3, 2, 12, 10], 5).affine(0.2, 0.4).unwrap(),
                &rand_tensor(&[3, 1, 12, 10], 6),
            ],
            1,
        )
        .unwrap(),
    )
    .unwrap();
    let no_seed = LossWeights {
        w_seed: 0.0,
        ..weights()
    };
    // The Lovász order has kinks within 1e-6 here: difference at 1e-8.
    check_grads_step(
        std::slice::from_ref(&pred),
        || {
            embedseg_loss(&pred, &labels, &centers, 2, &no_seed)
                .unwrap()
                .total
        },
        300,
        1e-5,
        1e-8,
    );
}
