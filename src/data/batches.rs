//! Batches of training crops: loaded and augmented in parallel on a
//! background thread, ahead of the training step; deterministic for a seed.

use std::collections::BTreeSet;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::{jitter_intensity, Dihedral};
use super::crops::CropItem;
use super::instances::InstanceTable;
use super::tiff_io::{read_image, read_labels};
use super::{DataError, Grid};

/// One crop in memory.
#[derive(Clone, Debug)]
pub struct Sample {
    pub image: Grid<f32>,
    pub labels: Grid<u32>,
    pub centers: Grid<u32>,
}

pub fn load_sample(item: &CropItem) -> Result<Sample, DataError> {
    Ok(Sample {
        image: read_image(&item.image)?.to_f32(),
        labels: read_labels(&item.labels)?,
        centers: read_labels(&item.centers)?,
    })
}

/// B samples of H × W, channel-less, row-major per sample.
#[derive(Clone, Debug)]
pub struct Batch {
    pub size: usize,
    pub height: usize,
    pub width: usize,
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub centers: Vec<u32>,
    /// The labels' instances, as the loss on a device takes them: found
    /// here, in the loader's thread, not on the training thread.
    pub instances: InstanceTable,
}

impl Batch {
    pub fn from_samples(samples: &[Sample]) -> Batch {
        let (height, width) = (samples[0].image.height, samples[0].image.width);
        let mut b = Batch {
            size: samples.len(),
            height,
            width,
            images: Vec::with_capacity(samples.len() * height * width),
            labels: Vec::with_capacity(samples.len() * height * width),
            centers: Vec::with_capacity(samples.len() * height * width),
            instances: InstanceTable::default(),
        };
        for s in samples {
            b.images.extend_from_slice(&s.image.data);
            b.labels.extend_from_slice(&s.labels.data);
            b.centers.extend_from_slice(&s.centers.data);
        }
        b.instances = InstanceTable::of(&b.labels, &b.centers, b.size, height, width);
        b
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Augment {
    pub dihedral: bool,
    pub intensity: bool,
}

impl Augment {
    pub const NONE: Augment = Augment {
        dihedral: false,
        intensity: false,
    };
}

/// A deterministic RNG for one purpose at one place (seed, epoch, position).
pub fn rng_for(seed: u64, epoch: u64, position: u64) -> ChaCha8Rng {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for v in [epoch, position] {
        h = (h ^ v).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
    }
    ChaCha8Rng::seed_from_u64(h)
}

/// The crop indices of one training epoch: a shuffled pass dropping the last
/// partial batch, or, with `steps` > 0, steps × batch draws with replacement
/// (EmbedSeg's fixed-size epochs).
pub fn epoch_order(
    items: &[usize],
    batch_size: usize,
    steps: usize,
    seed: u64,
    epoch: u64,
) -> Vec<usize> {
    let mut rng = rng_for(seed, epoch, u64::MAX);
    if steps > 0 {
        return (0..steps * batch_size)
            .map(|_| items[rng.random_range(0..items.len())])
            .collect();
    }
    let mut order = items.to_vec();
    order.shuffle(&mut rng);
    let full = order.len() / batch_size * batch_size;
    if full > 0 {
        order.truncate(full);
    }
    order
}

/// Splits frames into (train, validation) sets: `val_fraction` of them, at
/// least one when there are two or more, chosen by the seed.
pub fn split_frames(
    frames: &BTreeSet<String>,
    val_fraction: f64,
    seed: u64,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut all: Vec<&String> = frames.iter().collect();
    all.shuffle(&mut rng_for(seed, 0, u64::MAX - 1));
    let mut n_val = (val_fraction * all.len() as f64).round() as usize;
    if val_fraction > 0.0 && all.len() >= 2 {
        n_val = n_val.clamp(1, all.len() - 1);
    }
    let val: BTreeSet<String> = all[..n_val].iter().map(|s| s.to_string()).collect();
    let train = frames.difference(&val).cloned().collect();
    (train, val)
}

/// Batches streamed from a background thread, `prefetch` ahead.
pub struct BatchStream {
    rx: Receiver<Result<Batch, DataError>>,
    worker: Option<JoinHandle<()>>,
}

impl BatchStream {
    /// Streams `order` in batches of `batch_size`; sample randomness comes from
    /// (seed, epoch, position in the epoch), so the batches do not depend on
    /// thread timing. `first` is the epoch position of `order[0]` (resuming
    /// mid-epoch reproduces the rest of the epoch).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        items: Arc<Vec<CropItem>>,
        order: Vec<usize>,
        batch_size: usize,
        augment: Augment,
        seed: u64,
        epoch: u64,
        first: usize,
        prefetch: usize,
    ) -> BatchStream {
        let (tx, rx) = sync_channel(prefetch.max(1));
        let worker = std::thread::spawn(move || {
            for (b, chunk) in order.chunks(batch_size).enumerate() {
                let samples: Result<Vec<Sample>, DataError> = chunk
                    .par_iter()
                    .enumerate()
                    .map(|(i, &idx)| {
                        let mut s = load_sample(&items[idx])?;
                        let mut rng = rng_for(seed, epoch, (first + b * batch_size + i) as u64);
                        if augment.dihedral {
                            let d = Dihedral::random(&mut rng);
                            s.image = d.apply(&s.image);
                            s.labels = d.apply(&s.labels);
                            s.centers = d.apply(&s.centers);
                        }
                        if augment.intensity {
                            jitter_intensity(&mut s.image, &mut rng);
                        }
                        Ok(s)
                    })
                    .collect();
                if tx.send(samples.map(|s| Batch::from_samples(&s))).is_err() {
                    return; // the consumer stopped early
                }
            }
        });
        BatchStream {
            rx,
            worker: Some(worker),
        }
    }
}

impl Iterator for BatchStream {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Dropping the real receiver makes the worker's next send fail; then join.
        drop(std::mem::replace(&mut self.rx, sync_channel(1).1));
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_deterministic_and_drop_the_partial_batch() {
        let items: Vec<usize> = (0..10).collect();
        let a = epoch_order(&items, 4, 0, 7, 3);
        assert_eq!(a, epoch_order(&items, 4, 0, 7, 3));
        assert_ne!(a, epoch_order(&items, 4, 0, 7, 4));
        assert_eq!(a.len(), 8);
        assert_eq!(epoch_order(&items, 4, 5, 7, 3).len(), 20);
    }

    #[test]
    fn splits_are_by_frame_and_disjoint() {
        let frames: BTreeSet<String> = (0..20).map(|i| format!("01/t{i:03}")).collect();
        let (train, val) = split_frames(&frames, 0.15, 1);
        assert_eq!(val.len(), 3);
        assert_eq!(train.len(), 17);
        assert!(train.is_disjoint(&val));
        assert_eq!(split_frames(&frames, 0.15, 1).1, val, "deterministic");
        let two: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        assert_eq!(
            split_frames(&two, 0.1, 1).1.len(),
            1,
            "at least one validation frame"
        );
    }
}
