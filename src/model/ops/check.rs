//! Test helpers: finite-difference gradient checks in f64.
#![cfg(test)]

use candle_core::{DType, Device, Tensor, Var};

/// A deterministic pseudo-random tensor with values in [-1, 1).
pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data: Vec<f64> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).expect("a tensor")
}

/// Checks ∂f/∂v for every variable against central differences at up to
/// `samples` coordinates each; f must be a scalar function of the variables.
pub fn check_grads(vars: &[Var], f: impl Fn() -> Tensor, samples: usize, tol: f64) {
    check_grads_step(vars, f, samples, tol, 1e-6)
}

/// `check_grads` with central differences of step `h`.
pub fn check_grads_step(vars: &[Var], f: impl Fn() -> Tensor, samples: usize, tol: f64, h: f64) {
    let loss = f();
    let grads = loss.backward().expect("backward");
    for (vi, var) in vars.iter().enumerate() {
        let g = grads.get(var).expect("a gradient for every variable");
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.flatten_all().unwrap().to_vec1().unwrap();
        let step = (base.len() / samples).max(1);
        for i in (0..base.len()).step_by(step) {
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                f().to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let err = (numeric - g[i]).abs() / (1.0 + numeric.abs().max(g[i].abs()));
            assert!(
                err < tol,
                "variable {vi}, element {i}: analytic {} vs numeric {numeric}",
                g[i]
            );
        }
    }
}
