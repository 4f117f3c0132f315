//! What a run records every `log.vis_every` epochs (and at its last): the
//! pictures of one fixed validation crop (chosen at run start from the seed)
//! and AP/SEG of the validation frames, predicted whole and clustered with the
//! run's thresholds.

use std::path::Path;

use candle_core::Device;

use super::dataset::TrainData;
use super::TrainError;
use crate::config::Config;
use crate::data::batches::{load_sample, Sample};
use crate::data::ctc::{discover, Frame};
use crate::infer::evaluate::{evaluate_loaded, LoadedFrame};
use crate::infer::{cluster, ClusterParams, PredictOptions, Predictor, Segmenter};
use crate::model::{BranchedErfnet, Weights};
use crate::store::RunWriter;
use crate::viz;

pub struct Snapshots {
    every: u32,
    sample: Sample,
    sample_name: String,
    /// Validation frames, read once at run start.
    frames: Vec<LoadedFrame>,
}

impl Snapshots {
    /// None when pictures are off (`log.vis_every = 0`).
    pub fn new(cfg: &Config, data: &TrainData) -> Result<Option<Snapshots>, TrainError> {
        if cfg.log.vis_every == 0 {
            return Ok(None);
        }
        let (pool, split) = if data.val.is_empty() {
            (&data.train, "train")
        } else {
            (&data.val, "val")
        };
        let item = &data.items[pool[(cfg.seed % pool.len() as u64) as usize]];
        let mut frames: Vec<Frame> = discover(
            Path::new(&cfg.data.root),
            &cfg.data.sequences,
            cfg.data.annotations,
        )?
        .into_iter()
        .filter(|f| data.val_frames.contains(&f.key()))
        .collect();
        frames.truncate(cfg.log.eval_frames);
        let frames = frames
            .iter()
            .map(LoadedFrame::read)
            .collect::<Result<_, _>>()?;
        Ok(Some(Snapshots {
            every: cfg.log.vis_every,
            sample: load_sample(item)?,
            sample_name: format!("{split} crop {} cell {}", item.frame, item.id),
            frames,
        }))
    }

    pub fn due(&self, epoch: u32, epochs: u32) -> bool {
        epoch.is_multiple_of(self.every) || epoch == epochs
    }

    pub fn record(
        &self,
        weights: &Weights,
        cfg: &Config,
        device: &Device,
        writer: &mut RunWriter,
        (epoch, step): (u32, u64),
    ) -> Result<(), TrainError> {
        let net = BranchedErfnet::for_inference(weights, cfg.model.n_sigma)?;
        let predictor = Predictor::new(net, device.clone());
        let options = PredictOptions::default();
        let s = &self.sample;
        let prediction = predictor.predict(&s.image, &options)?;
        let labels = cluster(&prediction, &ClusterParams::from_config(&cfg.cluster));
        let pictures = viz::training_pictures(&viz::Sample {
            image: &s.image,
            prediction: &prediction,
            labels: &labels,
            truth: Some(&s.labels),
            centers: Some(&s.centers),
        });
        for p in &pictures {
            writer.log_image(epoch, p.kind, &viz::encode_png(&p.image()))?;
        }
        let heading = format!("epoch {epoch} · {}", self.sample_name);
        writer.log_image(
            epoch,
            "panel",
            &viz::encode_png(&viz::panel(&pictures, &heading)),
        )?;
        if !self.frames.is_empty() {
            let segmenter = Segmenter::new(predictor, cfg, options);
            let scores = evaluate_loaded(&segmenter, &self.frames)?;
            for (key, v) in scores.scalars() {
                writer.log_scalar(step, epoch, "val", key, v)?;
            }
        }
        Ok(())
    }
}
