//! The Winograd convolutions against im2col products, in f64 and f32.

use super::*;
use crate::model::ops::im2col::{col2im, im2col};

fn values(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1009) as f64) / 504.5 - 1.0)
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn geometries() -> Vec<Geom> {
    let mut out = Vec::new();
    for d in [1, 2, 3, 4, 8] {
        out.push(Geom::kernel(3, 1).pad(d, 0).dilate(d, 1));
        out.push(Geom::kernel(1, 3).pad(0, d).dilate(1, d));
    }
    out
}

#[test]
fn winograd_equals_im2col_forward_with_bias_residual_relu_and_both_gradients() {
    let mut checked = 0;
    for (c, o) in [(3, 4), (17, 9)] {
        for g in geometries() {
            for (h, w) in [(8, 8), (9, 13), (16, 5), (32, 32), (12, 40), (64, 40)] {
                if !applies(&g, h, w) {
                    continue;
                }
                checked += 1;
                let p = h * w;
                let ck = c * 3;
                let x = values(c * p, 1);
                let wt = values(o * ck, 2);
                let bias = values(o, 4);
                let residual = values(o * p, 5);
                let mut cols = vec![0.0; ck * p];
                im2col(&x, c, h, w, &g, &mut cols);
                let mut want = vec![0.0; o * p];
                matmul(
                    &mut want,
                    Mat::new(&wt, o, ck),
                    Mat::new(&cols, ck, p),
                    false,
                    1,
                );
                for (j, v) in want.iter_mut().enumerate() {
                    *v = (*v + bias[j / p] + residual[j]).max(0.0);
                }
                for threads in [1, 3] {
                    let around = Around {
                        bias: Some(&bias),
                        residual: Some(&residual),
                        relu: true,
                    };
                    let mut got = vec![f64::NAN; o * p];
                    forward_image(
                        &x,
                        &forward_kernel(&wt, c, o),
                        &mut got,
                        (c, h, w),
                        o,
                        &g,
                        threads,
                        &around,
                    );
                    let err = max_diff(&want, &got);
                    assert!(err < 1e-12, "{g:?} {h}×{w} threads {threads}: {err}");
                }

                let grad = values(o * p, 3);
                matmul(
                    &mut cols,
                    Mat::new(&wt, o, ck).t(),
                    Mat::new(&grad, o, p),
                    false,
                    1,
                );
                let mut want_gx = vec![0.0; c * p];
                col2im(&cols, c, h, w, &g, &mut want_gx);
                let mut gx = vec![f64::NAN; c * p];
                grad_input_image(
                    &grad,
                    &grad_input_kernel(&wt, c, o),
                    &mut gx,
                    (c, h, w),
                    o,
                    &g,
                    2,
                );
                let err = max_diff(&want_gx, &gx);
                assert!(err < 1e-12, "grad input {g:?} {h}×{w}: {err}");

                // Weight gradient, added to what gw holds: grad · im2col(x)ᵀ.
                im2col(&x, c, h, w, &g, &mut cols);
                let before = values(o * ck, 6);
                let mut want_gw = before.clone();
                matmul(
                    &mut want_gw,
                    Mat::new(&grad, o, p),
                    Mat::new(&cols, ck, p).t(),
                    true,
                    1,
                );
                let mut gw = before;
                grad_weight_image(&x, &grad, &mut gw, (c, h, w), o, &g);
                let err = max_diff(&want_gw, &gw);
                assert!(err < 1e-11, "grad weight {g:?} {h}×{w}: {err}");
            }
        }
    }
    assert!(checked >= 60, "only {checked} cases took the Winograd path");
}

#[test]
fn in_f32_the_error_stays_at_rounding_level() {
    // F(4, 3)'s transforms scale values by up to 8 and 1/24: the f32
    // result must stay within a few ulps of the f64 one, relative to
    // the sum of the magnitudes that went into each output.
    let (c, o, h, w) = (64, 64, 32, 32);
    for g in [
        Geom::kernel(3, 1).pad(1, 0),
        Geom::kernel(1, 3).pad(0, 2).dilate(1, 2),
    ] {
        let x = values(c * h * w, 7);
        let wt = values(o * c * 3, 8);
        let mut want = vec![0.0; o * h * w];
        forward_image(
            &x,
            &forward_kernel(&wt, c, o),
            &mut want,
            (c, h, w),
            o,
            &g,
            1,
            &Around::bias(None),
        );
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let wf: Vec<f32> = wt.iter().map(|&v| v as f32).collect();
        let mut got = vec![0f32; o * h * w];
        forward_image(
            &xf,
            &forward_kernel(&wf, c, o),
            &mut got,
            (c, h, w),
            o,
            &g,
            1,
            &Around::bias(None),
        );
        // Σ|w||x| over 3·C terms of magnitude ≤ 1.
        let scale = (3 * c) as f64;
        let err = want
            .iter()
            .zip(&got)
            .map(|(a, &b)| (a - b as f64).abs())
            .fold(0.0, f64::max);
        assert!(err / scale < 2e-6, "{g:?}: {err} of {scale}");
    }
}

#[test]
fn the_scheme_declines_kernels_and_sizes_it_does_not_fit() {
    assert!(applies(&Geom::kernel(3, 1).pad(1, 0), 64, 64));
    assert!(applies(
        &Geom::kernel(1, 3).pad(0, 16).dilate(1, 16),
        64,
        64
    ));
    // Dilation 16 on 32 columns: half the tiles' outputs would fall outside.
    assert!(!applies(
        &Geom::kernel(1, 3).pad(0, 16).dilate(1, 16),
        32,
        32
    ));
    assert!(!applies(&Geom::kernel(3, 3).pad(1, 1), 64, 64));
    assert!(!applies(&Geom::kernel(3, 1), 64, 64));
    assert!(!applies(&Geom::kernel(3, 1).pad(1, 0).stride(2), 64, 64));
}
