//! What a run records of its validation data beside the loss: the pictures
//! of one fixed validation crop (chosen at run start from the seed) every
//! `log.vis_every` epochs, and AP/SEG of the validation frames, predicted
//! whole and clustered with the run's thresholds, every `log.eval_every`
//! epochs (both at the last epoch too).

use std::path::Path;

use candle_core::Device;

use super::dataset::TrainData;
use super::TrainError;
use crate::config::Config;
use crate::data::batches::{load_sample, Sample};
use crate::data::ctc::{discover, Frame};
use crate::infer::evaluate::{evaluate_loaded, LoadedFrame};
use crate::infer::{cluster, ClusterParams, PredictOptions, Predictor, Segmenter};
use crate::metrics::Scores;
use crate::model::{BranchedErfnet, Weights};
use crate::store::RunWriter;
use crate::viz;

/// The crop drawn every `every` epochs.
struct Pictures {
    every: u32,
    sample: Sample,
    sample_name: String,
}

pub struct Snapshots {
    pictures: Option<Pictures>,
    eval_every: u32,
    /// Validation frames, read once at run start.
    frames: Vec<LoadedFrame>,
}

fn due(every: u32, epoch: u32, epochs: u32) -> bool {
    every > 0 && (epoch.is_multiple_of(every) || epoch == epochs)
}

impl Snapshots {
    pub fn new(cfg: &Config, data: &TrainData) -> Result<Snapshots, TrainError> {
        let pictures = if cfg.log.vis_every == 0 {
            None
        } else {
            let (pool, split) = if data.val.is_empty() {
                (&data.train, "train")
            } else {
                (&data.val, "val")
            };
            let item = &data.items[pool[(cfg.seed % pool.len() as u64) as usize]];
            Some(Pictures {
                every: cfg.log.vis_every,
                sample: load_sample(item)?,
                sample_name: format!("{split} crop {} cell {}", item.frame, item.id),
            })
        };
        let frames = if cfg.log.eval_every == 0 {
            Vec::new()
        } else {
            let mut frames: Vec<Frame> = discover(
                Path::new(&cfg.data.root),
                &cfg.data.sequences,
                cfg.data.annotations,
            )?
            .into_iter()
            .filter(|f| data.val_frames.contains(&f.key()))
            .collect();
            frames.truncate(cfg.log.eval_frames);
            frames
                .iter()
                .map(LoadedFrame::read)
                .collect::<Result<_, _>>()?
        };
        Ok(Snapshots {
            pictures,
            eval_every: cfg.log.eval_every,
            frames,
        })
    }

    /// Whether any validation frame is scored (AP50 can select checkpoints).
    pub fn scores_frames(&self) -> bool {
        self.eval_every > 0 && !self.frames.is_empty()
    }

    pub fn scores_due(&self, epoch: u32, epochs: u32) -> bool {
        !self.frames.is_empty() && due(self.eval_every, epoch, epochs)
    }

    pub fn pictures_due(&self, epoch: u32, epochs: u32) -> bool {
        self.pictures
            .as_ref()
            .is_some_and(|p| due(p.every, epoch, epochs))
    }

    fn predictor(
        weights: &Weights,
        cfg: &Config,
        device: &Device,
    ) -> Result<Predictor, TrainError> {
        let net = BranchedErfnet::for_inference(weights, cfg.model.n_sigma)?;
        Ok(Predictor::new(net, device.clone()))
    }

    /// AP and SEG of the validation frames with these weights.
    pub fn score(
        &self,
        weights: &Weights,
        cfg: &Config,
        device: &Device,
    ) -> Result<Scores, TrainError> {
        let predictor = Self::predictor(weights, cfg, device)?;
        let segmenter = Segmenter::new(predictor, cfg, PredictOptions::default());
        Ok(evaluate_loaded(&segmenter, &self.frames)?)
    }

    /// The six pictures and their panel of the fixed crop.
    pub fn record_pictures(
        &self,
        weights: &Weights,
        cfg: &Config,
        device: &Device,
        writer: &mut RunWriter,
        epoch: u32,
    ) -> Result<(), TrainError> {
        let Some(p) = &self.pictures else {
            return Ok(());
        };
        let predictor = Self::predictor(weights, cfg, device)?;
        let s = &p.sample;
        let prediction = predictor.predict(&s.image, &PredictOptions::default())?;
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
        let heading = format!("epoch {epoch} · {}", p.sample_name);
        writer.log_image(
            epoch,
            "panel",
            &viz::encode_png(&viz::panel(&pictures, &heading)),
        )?;
        Ok(())
    }
}
