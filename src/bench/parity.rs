//! `esx bench parity`: the native backend on a device against the fused
//! CPU backend, on the same weights (through a checkpoint) and batch:
//! network outputs in eval and train mode, each loss term, every
//! parameter's gradient and one Adam step. On a GPU this is the check that
//! CUDA computes what the CPU does; on the CPU it runs candle's own ops.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};

pub use super::sides::ParityBench;
use super::sides::{figure, flat, pair, rel_max, Bounds};
use super::train::synthetic_batch;
use super::Figure;
use crate::loss::LossTerms;
use crate::model::{Mode, Weights};
use crate::train::adam::Adam;

/// ‖a − b‖ / ‖b‖ over many tensors.
fn rel_norm(pairs: &[(String, Vec<f64>, Vec<f64>)]) -> f64 {
    let (mut d, mut n) = (0.0, 0.0);
    for (_, a, b) in pairs {
        for (x, y) in a.iter().zip(b) {
            d += (x - y) * (x - y);
            n += y * y;
        }
    }
    (d / n.max(1e-300)).sqrt()
}

/// Checks each dtype in turn, each figure going to `emit` as soon as it
/// is measured; a dtype that fails part-way is a FAILED figure and the
/// next one is checked. Returns whether every figure is within its bound.
pub fn run(
    opts: &ParityBench,
    device: &Device,
    emit: &mut dyn FnMut(Figure),
) -> candle_core::Result<bool> {
    let scratch = tempfile::tempdir()?;
    let mut ok = true;
    for &dtype in &opts.dtypes {
        let tag = format!("{dtype:?}").to_lowercase();
        let mut checked = |f: Figure| {
            ok &= !f.is_failure();
            emit(f)
        };
        if let Err(e) = check_dtype(opts, dtype, device, scratch.path(), &mut checked) {
            checked(Figure::failed(format!("{tag} parity"), &e));
        }
        if opts.steps > 0 {
            if let Err(e) = super::trajectory::run(opts, dtype, device, &mut checked) {
                checked(Figure::failed(format!("{tag} trajectory"), &e));
            }
        }
    }
    Ok(ok)
}

/// Outputs, loss terms, gradients and one Adam step in `dtype`.
fn check_dtype(
    opts: &ParityBench,
    dtype: DType,
    device: &Device,
    scratch: &std::path::Path,
    emit: &mut dyn FnMut(Figure),
) -> candle_core::Result<()> {
    let tag = format!("{dtype:?}").to_lowercase();
    let Bounds {
        out: b_out,
        train: b_train,
        grad: b_grad,
        adam: b_adam,
    } = Bounds::of(dtype, opts.tf32);
    let (reference, subject) = pair(dtype, device, scratch)?;

    let (x, labels, centers) = synthetic_batch(opts.batch, opts.size);
    let x_ref = x.to_dtype(dtype)?;
    let x_sub = x_ref.to_device(device)?;
    let shape = format!("[{},1,{},{}]", opts.batch, opts.size, opts.size);

    let eval = rel_max(
        &subject.net.forward(&x_sub, Mode::Eval)?,
        &reference.net.forward(&x_ref, Mode::Eval)?,
    )?;
    emit(figure(
        format!("{tag} output eval {shape}"),
        eval,
        b_out,
        String::new(),
    ));
    let y_sub = subject.net.forward(&x_sub, Mode::TrainNoDropout)?;
    let y_ref = reference.net.forward(&x_ref, Mode::TrainNoDropout)?;
    let train = rel_max(&y_sub, &y_ref)?;
    emit(figure(
        format!("{tag} output train"),
        train,
        b_train,
        String::new(),
    ));
    let stats = running_stats(&subject.weights, &reference.weights)?;
    emit(figure(
        format!("{tag} running statistics"),
        stats,
        b_out,
        String::new(),
    ));

    let t_sub = subject.loss.compute(&y_sub, &labels, &centers, true)?;
    let t_ref = reference.loss.compute(&y_ref, &labels, &centers, true)?;
    for (term, a, b) in terms(&t_sub, &t_ref)? {
        let e = (a - b).abs() / b.abs().max(1e-300);
        let detail = format!(": {a:.10e} vs {b:.10e}");
        emit(figure(format!("{tag} loss {term}"), e, b_out, detail));
    }

    let g_sub = t_sub.total.backward()?;
    let g_ref = t_ref.total.backward()?;
    let sub_vars: HashMap<String, Var> = subject.weights.trainable().into_iter().collect();
    let mut pairs = Vec::new();
    for (name, var) in reference.weights.trainable() {
        if let (Some(a), Some(b)) = (g_sub.get(&sub_vars[&name]), g_ref.get(&var)) {
            pairs.push((name, flat(a)?, flat(b)?));
        }
    }
    let scale = pairs
        .iter()
        .flat_map(|(_, _, b)| b.iter())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    let mut worst = (0.0f64, String::new());
    for (name, a, b) in &pairs {
        let e = a
            .iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            / scale;
        if e > worst.0 {
            worst = (e, name.clone());
        }
    }
    let norm = rel_norm(&pairs);
    let (held, how) = if dtype == DType::F64 {
        (worst.0, "max over elements / largest gradient")
    } else {
        (norm, "in norm")
    };
    let detail = format!(
        " ({how}) over {} parameters; worst parameter {} at {:.1e} of the largest gradient, {:.1e} in norm",
        pairs.len(),
        worst.1,
        worst.0,
        norm
    );
    emit(figure(format!("{tag} gradients"), held, b_grad, detail));

    // One Adam step from the reference's gradients, on both backends.
    let grads: Vec<(String, Tensor)> = reference
        .weights
        .trainable()
        .into_iter()
        .filter_map(|(n, v)| g_ref.get(&v).map(|g| (n, g.clone())))
        .collect();
    let step = adam_step(&reference.weights, &grads, &Device::Cpu)?;
    let moved = adam_step(&subject.weights, &grads, device)?;
    let e = moved
        .iter()
        .zip(&step)
        .map(|(a, b)| rel_max(a, b))
        .collect::<candle_core::Result<Vec<f64>>>()?
        .into_iter()
        .fold(0.0, f64::max);
    emit(figure(
        format!("{tag} one Adam step"),
        e,
        b_adam,
        String::new(),
    ));
    Ok(())
}

fn terms(a: &LossTerms, b: &LossTerms) -> candle_core::Result<[(&'static str, f64, f64); 4]> {
    let (a, b) = (a.values()?, b.values()?);
    Ok([
        ("total", a.value, b.value),
        ("instance", a.instance, b.instance),
        ("var", a.var, b.var),
        ("seed", a.seed, b.seed),
    ])
}

/// The worst relative difference of the batch norms' running statistics.
fn running_stats(a: &Weights, b: &Weights) -> candle_core::Result<f64> {
    let theirs: HashMap<String, Tensor> = b.named_tensors().into_iter().collect();
    let mut worst = 0.0f64;
    for (name, t) in a.named_tensors() {
        if name.contains("running_") {
            worst = worst.max(rel_max(&t, &theirs[&name])?);
        }
    }
    Ok(worst)
}

/// The parameters after one Adam step (lr 1e-3, decay 1e-4) on the
/// weights' own backend, from `grads` moved to `device`.
fn adam_step(
    weights: &Weights,
    grads: &[(String, Tensor)],
    device: &Device,
) -> candle_core::Result<Vec<Tensor>> {
    let params = weights.trainable();
    let mut opt = Adam::new(params.clone(), 1e-3, 1e-4, weights.backend)?;
    let by_name: HashMap<&str, &Tensor> = grads.iter().map(|(n, g)| (n.as_str(), g)).collect();
    let g = params
        .iter()
        .map(|(n, _)| {
            by_name
                .get(n.as_str())
                .map(|g| g.to_device(device))
                .transpose()
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    opt.step(&g)?;
    Ok(params.iter().map(|(_, v)| v.as_tensor().clone()).collect())
}
