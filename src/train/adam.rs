//! Adam with L2 weight decay added to the gradient, as torch.optim.Adam
//! (EmbedSeg trains with Adam, weight_decay 1e-4); candle-nn only has AdamW.
//! On the fused CPU backend the moments are host f64, one loop per
//! parameter; on the native backend they stay on the parameters' device,
//! every parameter in one flat tensor. On CUDA a step is one kernel over
//! every parameter (src/cuda/kernels.rs); elsewhere (the native backend on
//! the CPU, in tests) a few whole-model tensor ops.

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::backend::Backend;

pub struct Adam {
    params: Vec<(String, Var)>,
    moments: Moments,
    pub step: u64,
    pub lr: f64,
    pub weight_decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

enum Moments {
    Host {
        m: Vec<Vec<f64>>,
        v: Vec<Vec<f64>>,
    },
    /// m and v of every parameter end to end (parameter i at offsets[i]).
    Device {
        m: Tensor,
        v: Tensor,
        offsets: Vec<usize>,
        kernel: Option<Kernel>,
    },
}

/// One launch per step over every parameter, on CUDA devices.
#[cfg(feature = "cuda")]
type Kernel = crate::cuda::kernels::AdamKernel;
#[cfg(not(feature = "cuda"))]
type Kernel = std::convert::Infallible;

/// The kernel for parameters on a CUDA device, where its kernels compile.
fn kernel(params: &[(String, Var)]) -> Option<Kernel> {
    #[cfg(feature = "cuda")]
    if crate::backend::own_cuda_kernels()
        && params.first().is_some_and(|(_, p)| p.device().is_cuda())
    {
        return Kernel::new(params).ok();
    }
    let _ = params;
    None
}

impl Adam {
    pub fn new(
        params: Vec<(String, Var)>,
        lr: f64,
        weight_decay: f64,
        backend: Backend,
    ) -> Result<Adam> {
        let moments = match backend {
            Backend::Fused => Moments::Host {
                m: params
                    .iter()
                    .map(|(_, p)| vec![0.0; p.elem_count()])
                    .collect(),
                v: params
                    .iter()
                    .map(|(_, p)| vec![0.0; p.elem_count()])
                    .collect(),
            },
            Backend::Native => {
                let mut offsets = vec![0];
                for (_, p) in &params {
                    offsets.push(offsets.last().copied().unwrap_or(0) + p.elem_count());
                }
                let (dtype, dev) = params.first().map_or((DType::F32, Device::Cpu), |(_, p)| {
                    (p.dtype(), p.device().clone())
                });
                let total = offsets.last().copied().unwrap_or(0);
                Moments::Device {
                    m: Tensor::zeros(total, dtype, &dev)?,
                    v: Tensor::zeros(total, dtype, &dev)?,
                    offsets,
                    kernel: kernel(&params),
                }
            }
        };
        Ok(Adam {
            params,
            moments,
            step: 0,
            lr,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    /// One update from the gradient of each parameter (missing ones are skipped).
    pub fn step(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let (b1, b2, wd, eps, lr) = (self.beta1, self.beta2, self.weight_decay, self.eps, self.lr);
        match &mut self.moments {
            Moments::Host { m, v } => {
                for (i, (_, p)) in self.params.iter().enumerate() {
                    let Some(g) = &grads[i] else { continue };
                    let g: Vec<f64> = g.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
                    let mut w: Vec<f64> = p.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
                    let (m, v) = (&mut m[i], &mut v[i]);
                    for j in 0..w.len() {
                        let gj = g[j] + wd * w[j];
                        m[j] = b1 * m[j] + (1.0 - b1) * gj;
                        v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                        let denom = (v[j].sqrt() / bc2.sqrt()) + eps;
                        w[j] -= lr / bc1 * m[j] / denom;
                    }
                    let dtype = p.dtype();
                    p.set(&Tensor::from_vec(w, p.shape(), p.device())?.to_dtype(dtype)?)?;
                }
            }
            Moments::Device {
                m,
                v,
                offsets,
                kernel,
            } => {
                let present: Vec<bool> = grads.iter().map(Option::is_some).collect();
                if !present.iter().any(|&p| p) {
                    return Ok(());
                }
                #[cfg(feature = "cuda")]
                if let Some(k) = kernel {
                    let scalars = crate::cuda::kernels::AdamStep {
                        lr_bc1: lr / bc1,
                        inv_sqrt_bc2: 1.0 / bc2.sqrt(),
                        beta1: b1,
                        beta2: b2,
                        eps,
                        weight_decay: wd,
                    };
                    return k.step(grads, m, v, scalars);
                }
                #[cfg(not(feature = "cuda"))]
                if let Some(k) = kernel {
                    match *k {}
                }
                let flat = |f: &dyn Fn(usize, &Var) -> Result<Tensor>| -> Result<Tensor> {
                    let parts = self
                        .params
                        .iter()
                        .enumerate()
                        .map(|(i, (_, p))| f(i, p)?.flatten_all())
                        .collect::<Result<Vec<_>>>()?;
                    Tensor::cat(&parts, 0)
                };
                let w = flat(&|_, p| Ok(p.as_tensor().clone()))?;
                let g = flat(&|i, p| match &grads[i] {
                    Some(g) => Ok(g.clone()),
                    None => p.zeros_like(),
                })?;
                let g = (g + w.affine(wd, 0.0)?)?;
                let m_new = (m.affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?;
                let v_new = (v.affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
                let denom = v_new.sqrt()?.affine(1.0 / bc2.sqrt(), eps)?;
                let w_new = (w - m_new.affine(lr / bc1, 0.0)?.div(&denom)?)?;
                if present.iter().all(|&p| p) {
                    (*m, *v) = (m_new, v_new);
                } else {
                    // Parameters without a gradient keep their moments.
                    let keep: Vec<u8> = self
                        .params
                        .iter()
                        .zip(&present)
                        .flat_map(|((_, p), &has)| {
                            std::iter::repeat_n(u8::from(has), p.elem_count())
                        })
                        .collect();
                    let keep = Tensor::from_vec(keep, m.dims1()?, m.device())?;
                    *m = keep.where_cond(&m_new, m)?;
                    *v = keep.where_cond(&v_new, v)?;
                }
                for (i, (_, p)) in self.params.iter().enumerate() {
                    if present[i] {
                        let n = offsets[i + 1] - offsets[i];
                        p.set(&w_new.narrow(0, offsets[i], n)?.reshape(p.shape())?)?;
                    }
                }
            }
        }
        Ok(())
    }

    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.params.iter().map(|(_, v)| v)
    }

    /// Parameter i's first and second moments, as host f64.
    fn moments_of(&self, i: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        match &self.moments {
            Moments::Host { m, v } => Ok((m[i].clone(), v[i].clone())),
            Moments::Device { m, v, offsets, .. } => {
                let n = offsets[i + 1] - offsets[i];
                let host = |t: &Tensor| -> Result<Vec<f64>> {
                    t.narrow(0, offsets[i], n)?.to_dtype(DType::F64)?.to_vec1()
                };
                Ok((host(m)?, host(v)?))
            }
        }
    }

    /// The optimiser state as named host tensors, for checkpoints (the same
    /// on every backend: a run can resume on another device).
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![(
            "optim.step".to_string(),
            Tensor::new(&[self.step as f64], &Device::Cpu)?,
        )];
        for (i, (name, _)) in self.params.iter().enumerate() {
            let (m, v) = self.moments_of(i)?;
            let n = m.len();
            out.push((
                format!("optim.m.{name}"),
                Tensor::from_vec(m, n, &Device::Cpu)?,
            ));
            out.push((
                format!("optim.v.{name}"),
                Tensor::from_vec(v, n, &Device::Cpu)?,
            ));
        }
        Ok(out)
    }

    /// Restores the state written by `state`.
    pub fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<()> {
        let get = |k: &str| {
            tensors
                .get(k)
                .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint has no `{k}`")))
        };
        self.step = get("optim.step")?.to_vec1::<f64>()?[0] as u64;
        let names: Vec<String> = self.params.iter().map(|(n, _)| n.clone()).collect();
        let read = |kind: &str, name: &str| -> Result<Tensor> {
            get(&format!("optim.{kind}.{name}"))?.to_dtype(DType::F64)
        };
        match &mut self.moments {
            Moments::Host { m, v } => {
                for (i, name) in names.iter().enumerate() {
                    m[i] = read("m", name)?.to_vec1()?;
                    v[i] = read("v", name)?.to_vec1()?;
                }
            }
            Moments::Device { m, v, .. } => {
                let (dtype, dev) = (m.dtype(), m.device().clone());
                let all = |kind: &str| -> Result<Tensor> {
                    let parts = names
                        .iter()
                        .map(|n| read(kind, n))
                        .collect::<Result<Vec<_>>>()?;
                    Tensor::cat(&parts, 0)?.to_dtype(dtype)?.to_device(&dev)
                };
                let (new_m, new_v) = (all("m")?, all("v")?);
                if new_m.dims() != m.dims() {
                    candle_core::bail!(
                        "checkpoint's optimiser state has {} values, the model {}",
                        new_m.elem_count(),
                        m.elem_count()
                    );
                }
                (*m, *v) = (new_m, new_v);
            }
        }
        Ok(())
    }
}

/// EmbedSeg's poly schedule, for any number of epochs: lr·(1 − epoch/epochs)^0.9.
pub fn poly_lr(lr: f64, epoch: u32, epochs: u32) -> f64 {
    let frac = 1.0 - epoch as f64 / epochs.max(1) as f64;
    lr * frac.max(0.0).powf(0.9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torch_adam_with_weight_decay() {
        let fixture: serde_json::Value = serde_json::from_slice(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/embedseg/reference.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let a = &fixture["adam"];
        let vec = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let w = Var::from_vec(vec(&a["w0"]), 10, &Device::Cpu).unwrap();
        let mut opt = Adam::new(
            vec![("w".into(), w.clone())],
            a["lr"].as_f64().unwrap(),
            a["weight_decay"].as_f64().unwrap(),
            Backend::Fused,
        )
        .unwrap();
        for g in a["grads"].as_array().unwrap() {
            opt.step(&[Some(Tensor::from_vec(vec(g), 10, &Device::Cpu).unwrap())])
                .unwrap();
        }
        let got: Vec<f64> = w.to_vec1().unwrap();
        for (x, y) in got.iter().zip(vec(&a["after"])) {
            assert!((x - y).abs() < 1e-14, "{x} vs {y}");
        }
    }

    /// Three parameters, the second without a gradient at every other step.
    fn run_steps(
        backend: Backend,
        dtype: DType,
        steps: usize,
        resume_from: Option<&Adam>,
    ) -> (Vec<Vec<f64>>, Adam) {
        let shapes: [&[usize]; 3] = [&[4, 3], &[7], &[2, 2, 2]];
        let params: Vec<(String, Var)> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let t = crate::model::ops::check::rand_tensor(s, i as u64)
                    .to_dtype(dtype)
                    .unwrap();
                (format!("p{i}"), Var::from_tensor(&t).unwrap())
            })
            .collect();
        let mut opt = Adam::new(params.clone(), 1e-2, 1e-4, backend).unwrap();
        if let Some(from) = resume_from {
            let state: std::collections::HashMap<String, Tensor> =
                from.state().unwrap().into_iter().collect();
            opt.load_state(&state).unwrap();
            for ((_, p), (_, q)) in params.iter().zip(&from.params) {
                p.set(&q.as_tensor().to_dtype(dtype).unwrap()).unwrap();
            }
        }
        for k in 0..steps {
            let grads: Vec<Option<Tensor>> = params
                .iter()
                .enumerate()
                .map(|(i, (_, p))| {
                    (i != 1 || k % 2 == 0).then(|| {
                        let g = crate::model::ops::check::rand_tensor(
                            p.dims(),
                            100 + (k * 3 + i) as u64,
                        );
                        g.to_dtype(dtype).unwrap()
                    })
                })
                .collect();
            opt.step(&grads).unwrap();
        }
        let values = params
            .iter()
            .map(|(_, p)| {
                p.flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect();
        (values, opt)
    }

    fn max_relative(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x - y).abs() / y.abs().max(1e-12))
            .fold(0.0, f64::max)
    }

    #[test]
    fn device_moments_step_as_host_moments_do() {
        for (dtype, tol) in [(DType::F64, 1e-9), (DType::F32, 1e-4)] {
            let (host, _) = run_steps(Backend::Fused, dtype, 6, None);
            let (device, _) = run_steps(Backend::Native, dtype, 6, None);
            let e = max_relative(&device, &host);
            assert!(e <= tol, "{dtype:?}: {e:e}");
        }
    }

    #[test]
    fn optimiser_state_moves_between_backends() {
        // 3 steps on the device, checkpointed, 3 more on the host: the same
        // as all 6 on the host (the same gradient sequence both ways).
        let (_, on_device) = run_steps(Backend::Native, DType::F64, 3, None);
        let (_, on_host) = run_steps(Backend::Fused, DType::F64, 3, None);
        let (moved, opt) = run_steps(Backend::Fused, DType::F64, 3, Some(&on_device));
        let (stayed, _) = run_steps(Backend::Fused, DType::F64, 3, Some(&on_host));
        assert_eq!(opt.step, 6);
        let e = max_relative(&moved, &stayed);
        assert!(e <= 1e-9, "{e:e}");
        // And back: host state into device moments.
        let (back, _) = run_steps(Backend::Native, DType::F64, 3, Some(&on_host));
        let e = max_relative(&back, &stayed);
        assert!(e <= 1e-9, "{e:e}");
    }

    #[test]
    fn poly_schedule() {
        assert_eq!(poly_lr(1e-3, 0, 10), 1e-3);
        assert!((poly_lr(1e-3, 5, 10) - 1e-3 * 0.5f64.powf(0.9)).abs() < 1e-18);
        assert!(poly_lr(1e-3, 9, 10) > 0.0);
    }
}
