//! `esx import`: a model trained elsewhere (EmbedSeg's `.pth`, or a
//! safetensors file) recorded as a run of status `imported`, so predict,
//! eval, tune, report and `init = RUN` take it like a trained one. Every
//! check runs before anything is recorded; a write that fails after the run
//! was created removes it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::InferError;
use crate::config::Config;
use crate::model::import::{read_model_file, ModelFile};
use crate::store::{checkpoint_file, NewRun, Outcome, RunWriter, CHECKPOINTS};

/// Params under which an imported run keeps where it came from.
pub const IMPORT_SOURCE: &str = "import.source";
pub const IMPORT_SHA256: &str = "import.sha256";
pub const IMPORT_FORMAT: &str = "import.format";
pub const IMPORT_EPOCH: &str = "import.epoch";
pub const IMPORT_BEST_IOU: &str = "import.best_iou";

/// EmbedSeg's `create_test_configs_dict` default `min_object_size`.
const EMBEDSEG_MIN_SIZE: usize = 10;

pub struct ImportRequest {
    pub file: PathBuf,
    /// The run's name (default: the file's stem).
    pub name: Option<String>,
    /// Where runs are recorded.
    pub runs: PathBuf,
    /// The sigma channels, where the user says (else read from the file).
    pub n_sigma: Option<usize>,
    /// The command line, recorded with the run.
    pub command: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Imported {
    pub id: String,
    pub dir: PathBuf,
    pub name: String,
    pub source: PathBuf,
    pub format: &'static str,
    pub sha256: String,
    pub n_sigma: usize,
    pub tensors: usize,
    pub epoch: Option<i64>,
    pub best_iou: Option<f64>,
}

pub fn import_model(req: &ImportRequest) -> Result<Imported, InferError> {
    let file: ModelFile = read_model_file(&req.file)?;
    let source = std::fs::canonicalize(&req.file).unwrap_or_else(|_| req.file.clone());
    let (format, sha256, epoch, best_iou) =
        (file.format, file.sha256.clone(), file.epoch, file.best_iou);
    let tensors = file.tensors.len();
    let (weights, n_sigma) = file.into_weights(req.n_sigma)?;
    RunWriter::check_parent(&req.runs)?;

    let name = req.name.clone().unwrap_or_else(|| stem(&req.file));
    let mut config = Config {
        name: name.clone(),
        ..Config::default()
    };
    config.model.n_sigma = n_sigma;
    // The size rule needs training masks: an imported model clusters with
    // EmbedSeg's fixed default until tuned.
    config.cluster.min_size = crate::config::AutoSize::Fixed(EMBEDSEG_MIN_SIZE);
    // Nothing to tune until `esx tune RUN --data` says on which frames.
    config.tune.after_training = false;
    let new = NewRun {
        name: name.clone(),
        config_toml: toml::to_string(&config).expect("a Config always serialises to TOML"),
        overrides: Vec::new(),
        experiment: None,
        command: req.command.clone(),
        sweep: None,
        journal: None,
    };
    let mut writer = RunWriter::create(&req.runs, None, &new)?;
    let (id, dir) = (writer.id().to_string(), writer.dir().to_path_buf());
    let recorded = (|| -> Result<(), InferError> {
        let text = |s: &str| toml::Value::String(s.to_string());
        writer.set_param(IMPORT_SOURCE, &text(&source.display().to_string()))?;
        writer.set_param(IMPORT_SHA256, &text(&sha256))?;
        writer.set_param(IMPORT_FORMAT, &text(format.name()))?;
        if let Some(e) = epoch {
            writer.set_param(IMPORT_EPOCH, &toml::Value::Integer(e))?;
        }
        if let Some(v) = best_iou {
            writer.set_param(IMPORT_BEST_IOU, &toml::Value::Float(v))?;
        }
        std::fs::create_dir_all(dir.join(CHECKPOINTS)).map_err(|source| {
            crate::store::StoreError::Io {
                path: dir.join(CHECKPOINTS),
                source,
            }
        })?;
        weights.save(&checkpoint_file(&dir, "best"), &[], None)?;
        writer.log_event(
            "imported",
            &format!(
                "{} ({} file, sha256 {sha256}): {tensors} tensors, n_sigma {n_sigma}{}",
                source.display(),
                format.name(),
                epoch
                    .map(|e| format!(", its epoch {e}"))
                    .unwrap_or_default()
            ),
        )?;
        Ok(())
    })();
    if let Err(e) = recorded {
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    if let Err(e) = writer.finish(Outcome::Imported) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e.into());
    }
    Ok(Imported {
        id,
        dir,
        name,
        source,
        format: format.name(),
        sha256,
        n_sigma,
        tensors,
        epoch,
        best_iou,
    })
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "imported".into())
}
