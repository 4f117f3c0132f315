//! The typed configuration: every key esx reads, its type and its default.
//! Defaults are EmbedSeg's (arXiv 2101.10033 and its notebooks).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AutoSize, ConfigError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A human name for the run (W&B's run name); ids are generated.
    pub name: String,
    /// Seeds weights, crops, augmentation and the validation split.
    pub seed: u64,
    /// "cpu" or "cuda:N".
    pub device: String,
    /// Worker threads; 0 means RAYON_NUM_THREADS or all cores.
    pub threads: usize,
    pub epochs: u32,
    pub batch_size: usize,
    pub lr: f64,
    /// Start from these weights (fine-tuning): a run (id, prefix or folder;
    /// its best checkpoint, else its last) or a model file (EmbedSeg's
    /// `.pth`, safetensors). The optimiser starts fresh. "" trains from
    /// scratch.
    pub init: String,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub train: TrainConfig,
    pub cluster: ClusterConfig,
    pub log: LogConfig,
    /// How the clustering is tuned on the validation frames.
    pub tune: TuneConfig,
    /// Sweep axes, key → list | "range(…)" | "choice(…)"; read by `esx sweep`.
    pub sweep: BTreeMap<String, toml::Value>,
    /// How `esx sweep` searches the axes and stops losing runs.
    #[serde(skip_serializing_if = "SearchConfig::is_default")]
    pub search: SearchConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "esx".into(),
            seed: 42,
            device: "cpu".into(),
            threads: 0,
            epochs: 200,
            batch_size: 2,
            lr: 5e-4,
            init: String::new(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            loss: LossConfig::default(),
            train: TrainConfig::default(),
            cluster: ClusterConfig::default(),
            log: LogConfig::default(),
            tune: TuneConfig::default(),
            sweep: BTreeMap::new(),
            search: SearchConfig::default(),
        }
    }
}

/// `[search]`: read by `esx sweep` (its flags override each key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    pub method: SearchMethod,
    /// Points of a random or TPE search.
    pub trials: Option<usize>,
    /// Seeds the random draws and TPE's proposals.
    pub seed: u64,
    /// SPLIT/KEY of a recorded metric.
    pub objective: String,
    pub direction: Direction,
    pub prune: PruneMethod,
    /// No run is stopped before the end of this epoch.
    pub min_epochs: u32,
    /// ASHA's η: rungs at min_epochs·η^k, the top 1/η go on.
    pub reduction: u32,
}

impl SearchConfig {
    pub fn is_default(&self) -> bool {
        *self == SearchConfig::default()
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            method: SearchMethod::Grid,
            trials: None,
            seed: 0,
            objective: "val/iou".into(),
            direction: Direction::Max,
            prune: PruneMethod::None,
            min_epochs: 1,
            reduction: 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    Grid,
    Random,
    Tpe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PruneMethod {
    None,
    Median,
    Asha,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Annotations {
    #[serde(rename = "GT")]
    Gt,
    #[serde(rename = "ST")]
    St,
    #[serde(rename = "both")]
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CenterMethod {
    /// The exact medoid: the pixel minimising the summed distance to all others.
    Medoid,
    /// EmbedSeg's: the pixel nearest the coordinate-wise median.
    ApproxMedoid,
    /// The mean position (may fall outside non-convex cells).
    Centroid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// Per-image percentiles pmin..pmax mapped to 0..1 (EmbedSeg's default).
    Percentile,
    /// Per-image minimum..maximum mapped to 0..1.
    Minmax,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The CTC dataset folder (holding 01/, 01_GT/, …), relative to the working directory.
    pub root: String,
    pub sequences: Vec<String>,
    pub annotations: Annotations,
    /// Training crops are crop_size × crop_size, centred on instances;
    /// "auto": from the objects in the masks (data::object_sizes).
    pub crop_size: AutoSize,
    pub center: CenterMethod,
    /// Fraction of annotated frames held out for validation (split by frame).
    pub val_fraction: f64,
    pub normalization: Normalization,
    pub pmin: f64,
    pub pmax: f64,
    /// When set and `root` does not exist, `esx run` synthesises the dataset there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SynthConfig>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            root: String::new(),
            sequences: vec!["01".into(), "02".into()],
            annotations: Annotations::Gt,
            crop_size: AutoSize::Auto,
            center: CenterMethod::Medoid,
            val_fraction: 0.15,
            normalization: Normalization::Percentile,
            pmin: 1.0,
            pmax: 99.8,
            synthetic: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthKind {
    /// Fluorescence-like: bright cells on a dark background.
    Fluo,
    /// DIC-like: relief shading of the cells' height map.
    Dic,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    pub kind: SynthKind,
    pub sequences: usize,
    pub frames: usize,
    pub size: usize,
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            kind: SynthKind::Fluo,
            sequences: 2,
            frames: 8,
            size: 256,
            seed: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Sigma channels: 1 (isotropic) or 2 (one per axis).
    pub n_sigma: usize,
    /// The sigma output's initial bias (EmbedSeg's init_output).
    pub sigma_init: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            n_sigma: 2,
            sigma_init: 1.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    pub w_inst: f64,
    pub w_var: f64,
    pub w_seed: f64,
    /// Weight of foreground pixels in the seed term.
    pub foreground_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            w_inst: 1.0,
            w_var: 10.0,
            w_seed: 1.0,
            foreground_weight: 10.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// L2 weight decay added to the gradient (Adam, as EmbedSeg).
    pub weight_decay: f64,
    /// Gradient accumulation: batches per optimiser step.
    pub virtual_batch: usize,
    /// Random flips and 90° rotations of training crops.
    pub augment: bool,
    /// Random intensity scale and shift of training crops.
    pub intensity_jitter: bool,
    /// Training batches per epoch; 0 means one pass over the training crops.
    pub steps_per_epoch: usize,
    /// Validation batches per epoch; 0 means every validation crop.
    pub val_steps: usize,
    /// How CUDA convolutions compute in f32: "tf32" (tensor cores on
    /// inputs rounded to TF32, PyTorch's default for cuDNN) or "fp32"
    /// (exact f32, for parity with the CPU). The CPU always computes fp32.
    pub precision: Precision,
    /// Which epoch's weights are the run's best checkpoint.
    pub select: Select,
    /// Parts of the network not trained (e.g. ["encoder"], "decoders.1"):
    /// names or name prefixes of its tensors. Their batch-norm statistics
    /// still follow the data, as in PyTorch with requires_grad off.
    pub freeze: Vec<String>,
}

/// `train.select`: the validation measure the best checkpoint is chosen by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// AP at IoU 0.5 of the validation frames, predicted whole and
    /// clustered (at the epochs `log.eval_every` scores them).
    Ap50,
    /// AP averaged over IoU 0.5:0.95 of the same frames: rewards the masks'
    /// fit as well as their count. The default: on real data (CHO, 3 seeds)
    /// it kept AP50's gain over EmbedSeg and lifted SEG, which choosing by
    /// AP50 had lowered (tools/accuracy/results/2026-12-05-cho.log).
    #[default]
    Ap,
    /// Mean IoU of the validation crops (EmbedSeg's choice).
    Iou,
    /// The validation loss (lowest).
    Loss,
}

impl Select {
    pub fn name(self) -> &'static str {
        match self {
            Select::Ap50 => "ap50",
            Select::Ap => "ap",
            Select::Iou => "iou",
            Select::Loss => "loss",
        }
    }
}

/// `[tune]`: the clustering's thresholds, minimum size and TTA searched on
/// the run's validation frames (the network runs once per frame and view).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuneConfig {
    /// Tune when training ends (else `esx tune RUN`).
    pub after_training: bool,
    /// What the search maximises on the validation frames.
    pub objective: TuneObjective,
    /// Also try 8-fold test-time augmentation, kept where it scores higher.
    pub tta: bool,
}

impl Default for TuneConfig {
    fn default() -> Self {
        TuneConfig {
            after_training: true,
            objective: TuneObjective::Ap50,
            tta: true,
        }
    }
}

/// `tune.objective`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TuneObjective {
    /// AP at IoU 0.5.
    #[default]
    Ap50,
    /// AP averaged over IoU 0.5…0.9.
    Ap,
    /// The Cell Tracking Challenge's SEG.
    Seg,
}

impl TuneObjective {
    pub fn name(self) -> &'static str {
        match self {
            TuneObjective::Ap50 => "ap50",
            TuneObjective::Ap => "ap",
            TuneObjective::Seg => "seg",
        }
    }
}

/// `train.precision`: the arithmetic of f32 convolutions on a GPU.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Exact f32 multiply-adds.
    Fp32,
    /// Tensor cores on inputs rounded to 10-bit mantissas, f32 sums.
    #[default]
    Tf32,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            weight_decay: 1e-4,
            virtual_batch: 1,
            augment: true,
            intensity_jitter: false,
            steps_per_epoch: 0,
            val_steps: 0,
            precision: Precision::default(),
            select: Select::default(),
            freeze: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub seed_thresh: f64,
    pub fg_thresh: f64,
    /// Proposals with fewer pixels are dropped; "auto": the smallest
    /// object in the training masks, at most 0.3 × the median object area.
    pub min_size: AutoSize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            seed_thresh: 0.9,
            fg_thresh: 0.5,
            min_size: AutoSize::Auto,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Training pictures every this many epochs (0: never).
    pub vis_every: u32,
    /// Validation frames scored (AP, SEG) every this many epochs and at
    /// the last (0: never).
    pub eval_every: u32,
    /// Validation frames scored, at most.
    pub eval_frames: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            vis_every: 5,
            eval_every: 1,
            eval_frames: 16,
        }
    }
}

impl Config {
    /// Checks the ranges serde cannot: each error names the key and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| {
            Err(ConfigError::InvalidValue {
                key: key.into(),
                value,
                why: why.into(),
            })
        };
        if self.device != "cpu" && parse_cuda_ordinal(&self.device).is_none() {
            return bad(
                "device",
                self.device.clone(),
                "expected \"cpu\" or \"cuda:N\"",
            );
        }
        if self.batch_size == 0 {
            return bad("batch_size", "0".into(), "must be at least 1");
        }
        if self.epochs == 0 {
            return bad(
                "epochs",
                "0".into(),
                "must be at least 1 (a run of 0 epochs trains nothing)",
            );
        }
        if self.threads > MAX_THREADS {
            return bad(
                "threads",
                self.threads.to_string(),
                &format!("at most {MAX_THREADS} (0: all cores)"),
            );
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", self.lr.to_string(), "must be a positive number");
        }
        // NaN or infinity here only fails later, as "the loss became NaN".
        for (key, v) in [
            ("model.sigma_init", self.model.sigma_init),
            ("loss.w_inst", self.loss.w_inst),
            ("loss.w_var", self.loss.w_var),
            ("loss.w_seed", self.loss.w_seed),
            ("loss.foreground_weight", self.loss.foreground_weight),
            ("train.weight_decay", self.train.weight_decay),
        ] {
            if !v.is_finite() {
                return bad(key, v.to_string(), "must be a finite number");
            }
            if key != "model.sigma_init" && v < 0.0 {
                return bad(key, v.to_string(), "must not be negative");
            }
        }
        if !matches!(self.model.n_sigma, 1 | 2) {
            return bad(
                "model.n_sigma",
                self.model.n_sigma.to_string(),
                "must be 1 or 2",
            );
        }
        if let Some(crop) = self
            .data
            .crop_size
            .fixed()
            .filter(|&crop| !(16..=MAX_CROP).contains(&crop) || !crop.is_multiple_of(8))
        {
            return bad(
                "data.crop_size",
                crop.to_string(),
                &format!("must be a multiple of 8 from 16 (the network downsamples 3 times) to {MAX_CROP}"),
            );
        }
        if !(0.0..1.0).contains(&self.data.val_fraction) {
            return bad(
                "data.val_fraction",
                self.data.val_fraction.to_string(),
                "must be in [0, 1)",
            );
        }
        if !(0.0 <= self.data.pmin && self.data.pmin < self.data.pmax && self.data.pmax <= 100.0) {
            return bad(
                "data.pmax",
                format!("{} (pmin {})", self.data.pmax, self.data.pmin),
                "need 0 ≤ pmin < pmax ≤ 100",
            );
        }
        if self.data.sequences.is_empty() {
            return bad("data.sequences", "[]".into(), "name at least one sequence");
        }
        if self.train.virtual_batch == 0 {
            return bad("train.virtual_batch", "0".into(), "must be at least 1");
        }
        for (key, v) in [
            ("cluster.seed_thresh", self.cluster.seed_thresh),
            ("cluster.fg_thresh", self.cluster.fg_thresh),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, v.to_string(), "must be in [0, 1]");
            }
        }
        if let Some(s) = &self.data.synthetic {
            if s.size < 32 || s.frames == 0 || s.sequences == 0 || s.sequences > 99 {
                return bad(
                    "data.synthetic",
                    format!(
                        "size {} frames {} sequences {}",
                        s.size, s.frames, s.sequences
                    ),
                    "need size ≥ 32, frames ≥ 1 and 1–99 sequences",
                );
            }
        }
        Ok(())
    }
}

/// The most CPU threads a run may ask for.
pub const MAX_THREADS: usize = 1024;

/// The largest crop: 8192² pixels are 800 MB of crop files and far more
/// of activations in training.
pub const MAX_CROP: usize = 8192;

impl Config {
    /// The schema defaults as TOML.
    pub fn default_toml() -> String {
        toml::to_string(&Config::default()).expect("the schema serialises to TOML")
    }
}

/// `cuda:N` → N.
pub fn parse_cuda_ordinal(device: &str) -> Option<usize> {
    device.strip_prefix("cuda:")?.parse().ok()
}

/// Every dotted key the schema knows, for "did you mean" suggestions.
pub fn schema_keys() -> Vec<String> {
    let mut full = Config::default();
    full.data.synthetic = Some(SynthConfig::default());
    // A default [search] is left out when serialised: make it show.
    full.search.method = SearchMethod::Tpe;
    let value = serde_json::to_value(&full).expect("the schema serialises");
    let mut keys = Vec::new();
    collect_keys(&value, "", &mut keys);
    keys
}

fn collect_keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(key.clone());
            collect_keys(v, &key, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedseg_defaults() {
        let c = Config::default();
        assert_eq!(c.lr, 5e-4);
        // EmbedSeg's notebooks compute the crop and the smallest object
        // from the data, as "auto" does.
        assert_eq!(
            (c.epochs, c.batch_size, c.data.crop_size),
            (200, 2, AutoSize::Auto)
        );
        assert_eq!((c.model.n_sigma, c.model.sigma_init), (2, 1.0));
        assert_eq!(c.loss.foreground_weight, 10.0);
        assert_eq!(
            (c.loss.w_inst, c.loss.w_var, c.loss.w_seed),
            (1.0, 10.0, 1.0)
        );
        assert_eq!(c.train.weight_decay, 1e-4);
        assert_eq!(
            (
                c.cluster.seed_thresh,
                c.cluster.fg_thresh,
                c.cluster.min_size
            ),
            (0.9, 0.5, AutoSize::Auto)
        );
        c.validate().unwrap();
    }

    #[test]
    fn schema_keys_include_nested_and_optional_tables() {
        let keys = schema_keys();
        for k in [
            "lr",
            "model.sigma_init",
            "data.synthetic.kind",
            "cluster.min_size",
            "search.prune",
            "search.trials",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing");
        }
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = Config::default();
        c.data.crop_size = AutoSize::Fixed(100);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("data.crop_size"));
        let c = Config {
            device: "gpu".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("device"));
    }
}
