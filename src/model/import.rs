//! Model files made elsewhere — EmbedSeg's PyTorch `.pth` checkpoints or a
//! safetensors file of the same names — checked tensor by tensor against
//! esx's BranchedERFNet and loaded into its weights.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use super::pth::read_pth;
use super::{BranchedErfnet, ModelError, Weights};

/// How the file stores its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `torch.save`'s zip (EmbedSeg's `best_iou_model.pth`).
    Pth,
    Safetensors,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pth => "pytorch",
            Format::Safetensors => "safetensors",
        }
    }
}

/// A model file's tensors and what it says about its training.
#[derive(Debug)]
pub struct ModelFile {
    pub path: PathBuf,
    pub format: Format,
    pub sha256: String,
    pub tensors: BTreeMap<String, Tensor>,
    /// EmbedSeg's epoch and best validation IoU, where the file holds them.
    pub epoch: Option<i64>,
    pub best_iou: Option<f64>,
}

/// Buffers PyTorch keeps that esx's model has no use for, and the
/// optimiser state an esx checkpoint carries beside the model.
fn ignored(name: &str) -> bool {
    name.ends_with("num_batches_tracked") || name.starts_with("optim.")
}

/// Reads a `.pth` (a zip) or a safetensors file, told apart by content.
pub fn read_model_file(path: &Path) -> Result<ModelFile, ModelError> {
    let bad = |why: String| ModelError::Checkpoint {
        path: path.to_path_buf(),
        why,
    };
    let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| bad(e.to_string()))?;
        if n == 0 {
            break;
        }
        if head.len() < 4 {
            head.extend_from_slice(&buf[..n.min(4)]);
        }
        hasher.update(&buf[..n]);
    }
    let sha256 = format!("{:x}", hasher.finalize());
    let (format, tensors, epoch, best_iou) = if head.starts_with(b"PK\x03\x04") {
        let c = read_pth(path).map_err(|e| bad(e.why))?;
        (Format::Pth, c.tensors, c.epoch, c.best_iou)
    } else {
        let map = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            bad(format!(
                "neither a PyTorch checkpoint (a zip) nor a safetensors file ({e})"
            ))
        })?;
        (Format::Safetensors, map.into_iter().collect(), None, None)
    };
    Ok(ModelFile {
        path: path.to_path_buf(),
        format,
        sha256,
        tensors: tensors.into_iter().filter(|(n, _)| !ignored(n)).collect(),
        epoch,
        best_iou,
    })
}

impl ModelFile {
    fn dims(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.dims())
    }

    /// The sigma channels the file's network predicts, read from its output
    /// layer, after the checks that it is a 2D, one-channel, one-seed-class
    /// BranchedERFNet.
    pub fn n_sigma(&self) -> Result<usize, ModelError> {
        let bad = |why: String| ModelError::Checkpoint {
            path: self.path.clone(),
            why,
        };
        let first = "encoder.initial_block.conv.weight";
        let Some(input) = self.dims(first) else {
            return Err(self.not_ours());
        };
        if input.len() == 5 {
            return Err(bad(
                "a 3D model (BranchedERFNet_3d, 5-dimensional kernels): esx trains and predicts 2D images only".into(),
            ));
        }
        if input.len() != 4 || input[1] != 1 {
            return Err(bad(format!(
                "`{first}` is {input:?}: esx's model takes one input channel, this one {}",
                input.get(1).copied().unwrap_or(0)
            )));
        }
        let seed = self.dims("decoders.1.output_conv.weight");
        if let Some(d) = seed.filter(|d| d.len() == 4 && d[1] != 1) {
            return Err(bad(format!(
                "its seed decoder predicts {} classes: esx's model has one",
                d[1]
            )));
        }
        match self.dims("decoders.0.output_conv.weight") {
            Some(d) if d.len() == 4 && (3..=4).contains(&d[1]) => Ok(d[1] - 2),
            Some(d) => Err(bad(format!(
                "its offset decoder has {:?} output channels; esx's model has 3 or 4 (2 offsets, 1 or 2 sigmas)",
                d.get(1)
            ))),
            None => Err(self.not_ours()),
        }
    }

    /// The names' mismatch, for a file that lacks a tensor esx reads first.
    fn not_ours(&self) -> ModelError {
        match self.names_against(2) {
            Err(e) => e,
            Ok(_) => ModelError::Checkpoint {
                path: self.path.clone(),
                why: "not EmbedSeg's 2D BranchedERFNet".into(),
            },
        }
    }

    /// Every tensor of esx's model with `n_sigma` present in the file with its
    /// shape, and nothing else there (see `check_against`).
    pub fn names_against(&self, n_sigma: usize) -> Result<Weights, ModelError> {
        let weights = Weights::new(DType::F32, &Device::Cpu);
        BranchedErfnet::new(&weights, n_sigma, 0)?;
        self.check_against(&weights)?;
        Ok(weights)
    }

    /// Every tensor of `weights` present in the file with its shape, and
    /// nothing else there: else the first missing and the first unexpected
    /// name, or every tensor whose shape differs.
    pub fn check_against(&self, weights: &Weights) -> Result<(), ModelError> {
        let expected: BTreeMap<String, Vec<usize>> = weights
            .named_tensors()
            .into_iter()
            .map(|(n, t)| (n, t.dims().to_vec()))
            .collect();
        let missing: Vec<&String> = expected
            .keys()
            .filter(|n| !self.tensors.contains_key(*n))
            .collect();
        let unexpected: Vec<&String> = self
            .tensors
            .keys()
            .filter(|n| !expected.contains_key(*n))
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(ModelError::NotBranchedErfnet {
                path: self.path.clone(),
                missing: listed(&missing),
                unexpected: listed(&unexpected),
            });
        }
        let misfits: Vec<String> = expected
            .iter()
            .filter_map(|(n, want)| {
                let found = self.tensors[n].dims();
                (found != want.as_slice())
                    .then(|| format!("`{n}` {} not {}", shape(found), shape(want)))
            })
            .collect();
        if !misfits.is_empty() {
            return Err(ModelError::Misfits {
                path: self.path.clone(),
                count: misfits.len(),
                list: misfits.join("; "),
            });
        }
        Ok(())
    }

    /// Sets every tensor of `weights` (checked first) to the file's.
    pub fn load_into(&self, weights: &Weights) -> Result<(), ModelError> {
        self.check_against(weights)?;
        for map in [&weights.params, &weights.buffers] {
            for (name, var) in map.data().lock().expect("var map lock").iter() {
                let t = self.tensors[name].to_device(&weights.device)?;
                var.set(&t.to_dtype(weights.dtype)?)?;
            }
        }
        Ok(())
    }

    /// esx's model with `n_sigma` (default: the file's) holding the file's
    /// tensors.
    pub fn into_weights(self, n_sigma: Option<usize>) -> Result<(Weights, usize), ModelError> {
        let n_sigma = match n_sigma {
            Some(n) => n,
            None => self.n_sigma()?,
        };
        let weights = self.names_against(n_sigma)?;
        self.load_into(&weights)?;
        Ok((weights, n_sigma))
    }
}

/// 16×4×2×2
fn shape(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// "`a` (and 3 more)", or "none".
fn listed(names: &[&String]) -> String {
    match names {
        [] => "none".into(),
        [one] => format!("`{one}`"),
        [first, rest @ ..] => format!("`{first}` (and {} more)", rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/import")
            .join(name)
    }

    fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64));
        diff / scale
    }

    #[test]
    fn an_imported_embedseg_model_gives_pytorchs_outputs() {
        let file = read_model_file(&fixture("best_iou_model.pth")).unwrap();
        assert_eq!(file.format, Format::Pth);
        assert_eq!(file.sha256.len(), 64);
        let (weights, n_sigma) = file.into_weights(None).unwrap();
        assert_eq!(n_sigma, 2);
        let out =
            candle_core::safetensors::load(fixture("outputs.safetensors"), &Device::Cpu).unwrap();
        let net = BranchedErfnet::for_inference(&weights, n_sigma).unwrap();
        let got = net
            .forward(&out["input"], super::super::Mode::Eval)
            .unwrap();
        let e = rel_err(&got, &out["out_eval"]);
        assert!(e <= 1e-5, "the imported model's output differs by {e:e}");
        // The batch norms unfolded (the training network) agree too.
        let train_net = BranchedErfnet::new(&weights, n_sigma, 0).unwrap();
        let got = train_net
            .forward(&out["input"], super::super::Mode::Eval)
            .unwrap();
        let e = rel_err(&got, &out["out_eval"]);
        assert!(e <= 1e-5, "unfolded, the output differs by {e:e}");
    }

    #[test]
    fn another_architecture_names_its_first_missing_and_unexpected_key() {
        let file = read_model_file(&fixture("other_arch.pth")).unwrap();
        let e = file.n_sigma().unwrap_err().to_string();
        assert!(e.contains("`decoders.0.layers.0.bn.bias` (and"), "{e}");
        assert!(e.contains("unexpected `0.bias` (and 5 more)"), "{e}");
    }

    #[test]
    fn a_wrong_n_sigma_lists_every_misfit() {
        let file = read_model_file(&fixture("best_iou_model.pth")).unwrap();
        let Err(e) = file.into_weights(Some(1)) else {
            panic!("n_sigma 1 fits a model with 2")
        };
        let e = e.to_string();
        assert!(e.contains("4 tensors do not fit"), "{e}");
        assert!(
            e.contains("`decoders.0.output_conv.weight` 16×4×2×2 not 16×3×2×2"),
            "{e}"
        );
        assert!(e.contains("`decoders.0.output_conv.bias` 4 not 3"), "{e}");
        assert!(
            e.contains("`encoder.output_conv.weight` 5×128×1×1 not 4×128×1×1"),
            "{e}"
        );
    }

    #[test]
    fn a_safetensors_file_of_the_same_names_imports_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = read_model_file(&fixture("best_iou_model.pth")).unwrap();
        let (weights, _) = file.into_weights(None).unwrap();
        let st = dir.path().join("model.bin");
        weights.save(&st, &[], None).unwrap();
        let again = read_model_file(&st).unwrap();
        assert_eq!(again.format, Format::Safetensors);
        assert_eq!((again.epoch, again.best_iou), (None, None));
        let (w2, n) = again.into_weights(None).unwrap();
        assert_eq!(n, 2);
        let a = &weights.named_tensors()[3].1;
        let b = &w2.named_tensors()[3].1;
        assert_eq!(rel_err(a, b), 0.0);
    }
}
