//! The convolution ops against candle's own (correct) forward paths and
//! against finite differences, in f64, on odd shapes.

use candle_core::{Tensor, Var};

use super::check::{check_grads, rand_tensor};
use super::conv::{conv2d, conv_transpose2d};
use super::im2col::Geom;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn conv2d_matches_candle_on_symmetric_geometries() {
    let x = rand_tensor(&[2, 3, 9, 7], 1);
    for (k, stride, pad, dil) in [
        (3, 1, 1, 1),
        (3, 2, 1, 1),
        (3, 1, 2, 2),
        (1, 1, 0, 1),
        (2, 2, 0, 1),
    ] {
        let w = rand_tensor(&[4, 3, k, k], 2);
        let b = rand_tensor(&[4], 3);
        let ours = conv2d(
            &x,
            &w,
            &b,
            Geom::kernel(k, k)
                .stride(stride)
                .pad(pad, pad)
                .dilate(dil, dil),
            false,
        )
        .unwrap();
        let reference = x
            .conv2d(&w, pad, stride, dil, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(ours.dims(), reference.dims());
        assert!(
            max_abs_diff(&ours, &reference) < 1e-12,
            "k{k} s{stride} p{pad} d{dil}"
        );
    }
}

#[test]
fn factorised_dilated_kernels_match_explicit_padding() {
    // ERFNet's conv3x1 with padding (d, 0) and dilation (d, 1): candle's conv2d
    // takes one padding, so pad the height by hand.
    let x = rand_tensor(&[1, 2, 11, 6], 4);
    for d in [1, 2, 4] {
        let w = rand_tensor(&[3, 2, 3, 1], 5);
        let b = Tensor::zeros(3, candle_core::DType::F64, &candle_core::Device::Cpu).unwrap();
        let ours = conv2d(&x, &w, &b, Geom::kernel(3, 1).pad(d, 0).dilate(d, 1), false).unwrap();
        let padded = x.pad_with_zeros(2, d, d).unwrap();
        let reference = padded.conv2d(&w, 0, 1, d, 1).unwrap();
        assert!(max_abs_diff(&ours, &reference) < 1e-12, "3×1 d{d}");
        let w = rand_tensor(&[3, 2, 1, 3], 6);
        let ours = conv2d(&x, &w, &b, Geom::kernel(1, 3).pad(0, d).dilate(1, d), false).unwrap();
        let reference = x
            .pad_with_zeros(3, d, d)
            .unwrap()
            .conv2d(&w, 0, 1, d, 1)
            .unwrap();
        assert!(max_abs_diff(&ours, &reference) < 1e-12, "1×3 d{d}");
    }
}

#[test]
fn conv_transpose2d_matches_candle() {
    let x = rand_tensor(&[2, 4, 5, 6], 7);
    for ((k, stride, pad, out_pad), relu) in [(3, 2, 1, 1), (2, 2, 0, 0), (3, 1, 1, 0)]
        .into_iter()
        .flat_map(|g| [(g, false), (g, true)])
    {
        let w = rand_tensor(&[4, 3, k, k], 8);
        let b = rand_tensor(&[3], 9);
        let ours = conv_transpose2d(
            &x,
            &w,
            &b,
            Geom::kernel(k, k).stride(stride).pad(pad, pad),
            out_pad,
            relu,
        )
        .unwrap();
        let mut reference = x
            .conv_transpose2d(&w, pad, out_pad, stride, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, 3, 1, 1)).unwrap())
            .unwrap();
        if relu {
            reference = reference.relu().unwrap();
        }
        assert_eq!(ours.dims(), reference.dims(), "k{k} s{stride}");
        assert!(
            max_abs_diff(&ours, &reference) < 1e-12,
            "k{k} s{stride} p{pad} op{out_pad}"
        );
    }
}

fn weighted_sum(y: &Tensor, seed: u64) -> Tensor {
    let r = rand_tensor(y.dims(), seed);
    (y * r).unwrap().sum_all().unwrap()
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    // Odd sizes and different parities on the two axes: candle's own stride-2
    // backward fails there.
    for (g, shape) in [
        (Geom::kernel(3, 3).stride(2).pad(1, 1), [2, 3, 7, 6]),
        (Geom::kernel(3, 1).pad(2, 0).dilate(2, 1), [1, 2, 9, 5]),
        (Geom::kernel(1, 3).pad(0, 4).dilate(1, 4), [3, 2, 5, 11]),
        // Images of a multiple of 4d along the kernel's axis.
        (Geom::kernel(3, 1).pad(1, 0), [2, 3, 8, 6]),
        (Geom::kernel(1, 3).pad(0, 2).dilate(1, 2), [2, 2, 5, 8]),
    ] {
        // The last two take the Winograd path, the others do not.
        let winograd = shape[2] == 8 || shape[3] == 8;
        assert_eq!(
            super::winograd::applies(&g, shape[2], shape[3]),
            winograd,
            "{g:?}"
        );
        let x = Var::from_tensor(&rand_tensor(&shape, 10)).unwrap();
        let w = Var::from_tensor(&rand_tensor(&[4, shape[1], g.kh, g.kw], 11)).unwrap();
        let b = Var::from_tensor(&rand_tensor(&[4], 12)).unwrap();
        let f = || weighted_sum(&conv2d(&x, &w, &b, g, false).unwrap(), 13);
        check_grads(&[x.clone(), w.clone(), b.clone()], f, 40, 1e-7);
    }
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences() {
    for ((k, s, p, op), relu) in [
        ((3, 2, 1, 1), false),
        ((2, 2, 0, 0), false),
        ((3, 2, 1, 1), true),
    ] {
        let x = Var::from_tensor(&rand_tensor(&[2, 3, 4, 5], 14)).unwrap();
        let w = Var::from_tensor(&rand_tensor(&[3, 2, k, k], 15)).unwrap();
        let b = Var::from_tensor(&rand_tensor(&[2], 16)).unwrap();
        let g = Geom::kernel(k, k).stride(s).pad(p, p);
        let f = || weighted_sum(&conv_transpose2d(&x, &w, &b, g, op, relu).unwrap(), 17);
        check_grads(&[x.clone(), w.clone(), b.clone()], f, 40, 1e-7);
    }
}

#[test]
fn the_residual_convolution_equals_conv_plus_shortcut_then_relu() {
    // Both paths: shifted taps (1×3, 3×1) and im2col (a dilation too wide
    // for the shifted scheme on 9 columns).
    let x = rand_tensor(&[2, 3, 10, 9], 21);
    for g in [
        Geom::kernel(1, 3).pad(0, 1),
        Geom::kernel(3, 1).pad(2, 0).dilate(2, 1),
        Geom::kernel(1, 3).pad(0, 4).dilate(1, 4),
    ] {
        let w = rand_tensor(&[3, 3, g.kh, g.kw], 22);
        let b = rand_tensor(&[3], 23);
        let shortcut = rand_tensor(&[2, 3, 10, 9], 24);
        let bias: Vec<f64> = b.to_vec1().unwrap();
        let ours = super::conv::conv2d_residual_relu(&x, &w, &bias, &shortcut, g).unwrap();
        let reference = (conv2d(&x, &w, &b, g, false).unwrap() + &shortcut)
            .unwrap()
            .relu()
            .unwrap();
        assert!(max_abs_diff(&ours, &reference) < 1e-12, "{g:?}");
    }
}
