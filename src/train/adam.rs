//! Adam with L2 weight decay added to the gradient, as torch.optim.Adam
//! (EmbedSeg trains with Adam, weight_decay 1e-4); candle-nn only has AdamW.
//! The moments are kept in f64 on the host, one fused loop per parameter.

use candle_core::{DType, Device, Result, Tensor, Var};

pub struct Adam {
    params: Vec<(String, Var)>,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
    pub step: u64,
    pub lr: f64,
    pub weight_decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    pub fn new(params: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Adam {
        let m = params
            .iter()
            .map(|(_, p)| vec![0.0; p.elem_count()])
            .collect();
        let v = params
            .iter()
            .map(|(_, p)| vec![0.0; p.elem_count()])
            .collect();
        Adam {
            params,
            m,
            v,
            step: 0,
            lr,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// One update from the gradient of each parameter (missing ones are skipped).
    pub fn step(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let g: Vec<f64> = g.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
            let mut w: Vec<f64> = p.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            for j in 0..w.len() {
                let gj = g[j] + self.weight_decay * w[j];
                m[j] = self.beta1 * m[j] + (1.0 - self.beta1) * gj;
                v[j] = self.beta2 * v[j] + (1.0 - self.beta2) * gj * gj;
                let denom = (v[j].sqrt() / bc2.sqrt()) + self.eps;
                w[j] -= self.lr / bc1 * m[j] / denom;
            }
            let dtype = p.dtype();
            p.set(&Tensor::from_vec(w, p.shape(), p.device())?.to_dtype(dtype)?)?;
        }
        Ok(())
    }

    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.params.iter().map(|(_, v)| v)
    }

    /// The optimiser state as named tensors, for checkpoints.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![(
            "optim.step".to_string(),
            Tensor::new(&[self.step as f64], &Device::Cpu)?,
        )];
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((
                format!("optim.m.{name}"),
                Tensor::from_slice(&self.m[i], self.m[i].len(), &Device::Cpu)?,
            ));
            out.push((
                format!("optim.v.{name}"),
                Tensor::from_slice(&self.v[i], self.v[i].len(), &Device::Cpu)?,
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
        for (i, (name, _)) in self.params.iter().enumerate() {
            self.m[i] = get(&format!("optim.m.{name}"))?
                .to_dtype(DType::F64)?
                .to_vec1()?;
            self.v[i] = get(&format!("optim.v.{name}"))?
                .to_dtype(DType::F64)?
                .to_vec1()?;
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
        );
        for g in a["grads"].as_array().unwrap() {
            opt.step(&[Some(Tensor::from_vec(vec(g), 10, &Device::Cpu).unwrap())])
                .unwrap();
        }
        let got: Vec<f64> = w.to_vec1().unwrap();
        for (x, y) in got.iter().zip(vec(&a["after"])) {
            assert!((x - y).abs() < 1e-14, "{x} vs {y}");
        }
    }

    #[test]
    fn poly_schedule() {
        assert_eq!(poly_lr(1e-3, 0, 10), 1e-3);
        assert!((poly_lr(1e-3, 5, 10) - 1e-3 * 0.5f64.powf(0.9)).abs() < 1e-18);
        assert!(poly_lr(1e-3, 9, 10) > 0.0);
    }
}
