//! From an image on disk to instance labels: normalise as the run trained,
//! predict (tiles, TTA), cluster.

use candle_core::Device;

use super::{cluster, ClusterParams, InferError, PredictOptions, Prediction, Predictor};
use crate::config::{Config, Normalization};
use crate::data::normalize::normalize;
use crate::data::tiff_io::RawImage;
use crate::data::Grid;

pub struct Segmenter {
    pub predictor: Predictor,
    pub options: PredictOptions,
    pub cluster: ClusterParams,
    pub normalization: Normalization,
    pub pmin: f64,
    pub pmax: f64,
}

/// A prediction and its instances.
pub struct Segmented {
    pub image: Grid<f32>,
    pub prediction: Prediction,
    pub labels: Grid<u32>,
}

impl Segmenter {
    /// With the normalisation and thresholds of `config`.
    pub fn new(predictor: Predictor, config: &Config, options: PredictOptions) -> Segmenter {
        Segmenter {
            predictor,
            options,
            cluster: ClusterParams::from_config(&config.cluster),
            normalization: config.data.normalization,
            pmin: config.data.pmin,
            pmax: config.data.pmax,
        }
    }

    pub fn load(
        checkpoint: &std::path::Path,
        config: &Config,
        options: PredictOptions,
        device: &Device,
    ) -> Result<Segmenter, InferError> {
        Ok(Segmenter::new(
            Predictor::load(checkpoint, device)?,
            config,
            options,
        ))
    }

    /// The normalised image, as the network saw it in training.
    pub fn normalised(&self, raw: &RawImage) -> Grid<f32> {
        let mut image = raw.to_f32();
        normalize(&mut image, self.normalization, self.pmin, self.pmax);
        image
    }

    pub fn segment(&self, raw: &RawImage) -> Result<Segmented, InferError> {
        let image = self.normalised(raw);
        let prediction = self.predictor.predict(&image, &self.options)?;
        let labels = cluster(&prediction, &self.cluster);
        Ok(Segmented {
            image,
            prediction,
            labels,
        })
    }
}
