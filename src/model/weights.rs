//! The model's tensors by their EmbedSeg (PyTorch state_dict) names:
//! trainable parameters and batch-norm buffers, seeded PyTorch-style
//! initialisation, and safetensors checkpoints.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::layers::Builders;
use super::ModelError;
use crate::backend::Backend;

pub struct Weights {
    pub params: VarMap,
    pub buffers: VarMap,
    pub dtype: DType,
    pub device: Device,
    /// The kernels a network built on these weights runs.
    pub backend: Backend,
}

impl Weights {
    /// Weights on `device`, for the kernels that device runs.
    pub fn new(dtype: DType, device: &Device) -> Weights {
        Weights::with_backend(dtype, device, Backend::for_device(device))
    }

    /// Weights for the given kernels (tests run the native ones on the CPU).
    pub fn with_backend(dtype: DType, device: &Device, backend: Backend) -> Weights {
        Weights {
            params: VarMap::new(),
            buffers: VarMap::new(),
            dtype,
            device: device.clone(),
            backend,
        }
    }

    pub fn builders(&self) -> Builders<'_> {
        Builders {
            params: VarBuilder::from_varmap(&self.params, self.dtype, &self.device),
            buffers: VarBuilder::from_varmap(&self.buffers, self.dtype, &self.device),
            buffer_map: &self.buffers,
            backend: self.backend,
        }
    }

    /// Trainable parameters, sorted by name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        sorted(&self.params)
    }

    /// Every tensor (parameters and buffers), sorted by name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut all: Vec<(String, Tensor)> = sorted(&self.params)
            .into_iter()
            .chain(sorted(&self.buffers))
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub fn parameter_count(&self) -> usize {
        self.trainable().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// PyTorch's default initialisation, from `seed`: convolution weights and
    /// biases U(±1/√fan_in) with fan_in = size(1)·kh·kw (for a transposed
    /// convolution size(1) is its output channels, as PyTorch computes it).
    /// Batch norm keeps weight 1, bias 0.
    pub fn init_pytorch(&self, seed: u64) -> candle_core::Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let params = self.trainable();
        let shapes: BTreeMap<&str, Vec<usize>> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.dims().to_vec()))
            .collect();
        for (name, var) in &params {
            let owner = name.rsplit_once('.').map_or("", |(p, _)| p);
            let Some(weight) = shapes.get(format!("{owner}.weight").as_str()) else {
                continue;
            };
            if weight.len() != 4 {
                continue; // batch norm
            }
            let fan_in = (weight[1] * weight[2] * weight[3]) as f64;
            let bound = 1.0 / fan_in.sqrt();
            let values: Vec<f64> = (0..var.elem_count())
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            var.set(&Tensor::from_vec(values, var.shape(), &self.device)?.to_dtype(self.dtype)?)?;
        }
        Ok(())
    }

    /// EmbedSeg's init_output: the offset and sigma outputs start at 0 weight,
    /// offset bias 0 and sigma bias `sigma_init`.
    pub fn init_output(&self, n_sigma: usize, sigma_init: f64) -> candle_core::Result<()> {
        let map = self.params.data().lock().expect("params lock");
        let w = &map["decoders.0.output_conv.weight"];
        let b = &map["decoders.0.output_conv.bias"];
        let (cin, cout, kh, kw) = w.dims4()?;
        let mut wv: Vec<f64> = w.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
        for i in 0..cin {
            for o in 0..(2 + n_sigma).min(cout) {
                let start = ((i * cout + o) * kh) * kw;
                wv[start..start + kh * kw].iter_mut().for_each(|v| *v = 0.0);
            }
        }
        w.set(&Tensor::from_vec(wv, (cin, cout, kh, kw), &self.device)?.to_dtype(self.dtype)?)?;
        let mut bv: Vec<f64> = b.to_dtype(DType::F64)?.to_vec1()?;
        for (o, v) in bv.iter_mut().enumerate().take(2 + n_sigma) {
            *v = if o < 2 { 0.0 } else { sigma_init };
        }
        b.set(&Tensor::from_vec(bv, cout, &self.device)?.to_dtype(self.dtype)?)?;
        Ok(())
    }

    /// Writes every tensor (and `extra` ones, e.g. optimiser state) as
    /// safetensors with string `metadata`, atomically (write, then rename).
    pub fn save(
        &self,
        path: &Path,
        extra: &[(String, Tensor)],
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<(), ModelError> {
        self.stage(path, extra, metadata)?.commit()
    }

    /// Writes the file `save` would, beside `path`, without putting it in
    /// place: several checkpoints are then committed together, or none.
    pub fn stage(
        &self,
        path: &Path,
        extra: &[(String, Tensor)],
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Staged, ModelError> {
        let mut all: Vec<(String, Tensor)> = self.named_tensors();
        all.extend(extra.iter().cloned());
        let tmp = path.with_extension("safetensors.tmp");
        safetensors::tensor::serialize_to_file(
            all.iter().map(|(k, v)| (k.as_str(), v)),
            metadata,
            &tmp,
        )
        .map_err(|e| {
            // A full disk must not also keep the half-written file.
            let _ = std::fs::remove_file(&tmp);
            ModelError::Checkpoint {
                path: path.to_path_buf(),
                why: e.to_string(),
            }
        })?;
        Ok(Staged {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Loads every model tensor from a safetensors file (PyTorch names), naming
    /// the first missing tensor or shape that does not fit.
    pub fn load(&self, path: &Path) -> Result<(), ModelError> {
        let file = candle_core::safetensors::load(path, &self.device).map_err(|e| {
            ModelError::Checkpoint {
                path: path.to_path_buf(),
                why: e.to_string(),
            }
        })?;
        for map in [&self.params, &self.buffers] {
            for (name, var) in sorted(map) {
                let t = file.get(&name).ok_or_else(|| ModelError::MissingTensor {
                    path: path.to_path_buf(),
                    name: name.clone(),
                })?;
                if t.dims() != var.dims() {
                    return Err(ModelError::ShapeMismatch {
                        path: path.to_path_buf(),
                        name,
                        expected: var.dims().to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                var.set(&t.to_dtype(self.dtype)?)?;
            }
        }
        Ok(())
    }
}

/// A checkpoint written beside its place; dropped uncommitted, it is removed.
pub struct Staged {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Staged {
    /// Puts the file in place (a rename: no space needed).
    pub fn commit(self) -> Result<(), ModelError> {
        let done = std::fs::rename(&self.tmp, &self.path).map_err(|e| ModelError::Checkpoint {
            path: self.path.clone(),
            why: e.to_string(),
        });
        std::mem::forget(self);
        done
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn sorted(map: &VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().expect("var map lock");
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
