//! BranchedERFNet: one ERFNet encoder, two decoders — [offset x, offset y,
//! sigma × n_sigma] and [seed] — concatenated along channels.

use std::sync::Mutex;

use candle_core::{Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::erfnet::{Decoder, Encoder};
use candle_nn::VarBuilder;

use super::layers::{branches, Builders, Mode};
use super::weights::Weights;

pub struct BranchedErfnet {
    encoder: Encoder,
    decoders: Vec<Decoder>,
    n_sigma: usize,
    dropout_rng: Mutex<ChaCha8Rng>,
}

impl BranchedErfnet {
    /// Builds the network's tensors in `weights` (zeros until initialised or loaded).
    pub fn new(weights: &Weights, n_sigma: usize, seed: u64) -> Result<BranchedErfnet> {
        Self::build(&weights.builders(), n_sigma, seed)
    }

    /// A network over detached copies of `weights`' parameters: its forward
    /// passes keep no autograd graph (inference on large images), and in
    /// eval mode the batch norms are folded into the convolutions before
    /// them (their running statistics as they are now).
    pub fn for_inference(weights: &Weights, n_sigma: usize) -> Result<BranchedErfnet> {
        let params = weights
            .trainable()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().detach()))
            .collect();
        let b = Builders {
            params: VarBuilder::from_tensors(params, weights.dtype, &weights.device),
            buffers: VarBuilder::from_varmap(&weights.buffers, weights.dtype, &weights.device),
            buffer_map: &weights.buffers,
            backend: weights.backend,
        };
        let mut net = Self::build(&b, n_sigma, 0)?;
        net.encoder.fold()?;
        net.decoders.iter_mut().try_for_each(Decoder::fold)?;
        Ok(net)
    }

    fn build(b: &Builders, n_sigma: usize, seed: u64) -> Result<BranchedErfnet> {
        let num_classes = [2 + n_sigma, 1];
        let d = b.pp("decoders");
        Ok(BranchedErfnet {
            encoder: Encoder::new(&b.pp("encoder"), 1, num_classes.iter().sum())?,
            decoders: vec![
                Decoder::new(&d.pp(0), num_classes[0])?,
                Decoder::new(&d.pp(1), num_classes[1])?,
            ],
            n_sigma,
            dropout_rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0xd50f)),
        })
    }

    pub fn n_sigma(&self) -> usize {
        self.n_sigma
    }

    /// (N, 1, H, W) → (N, 3 + n_sigma, H, W); H and W multiples of 8.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let features = self.encoder.forward(x, mode, &self.dropout_rng)?;
        branches(&self.decoders, &features, |d, f| {
            d.forward(f, mode, &self.dropout_rng)
        })
    }

    /// Restarts the dropout stream (resuming a run reproduces its masks).
    pub fn reseed_dropout(&self, seed: u64) {
        *self.dropout_rng.lock().expect("dropout rng lock") = ChaCha8Rng::seed_from_u64(seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn parameter_names_and_counts_match_embedseg() {
        let w = Weights::new(DType::F32, &Device::Cpu);
        let _net = BranchedErfnet::new(&w, 2, 0).unwrap();
        // EmbedSeg 0.2.5, n_sigma = 2: 2,252,624 trainable + 7,392 running statistics.
        assert_eq!(w.parameter_count(), 2_252_624);
        let buffers: usize = w
            .named_tensors()
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum::<usize>()
            - 2_252_624;
        assert_eq!(buffers, 7_392);
        let names: Vec<String> = w.named_tensors().into_iter().map(|(n, _)| n).collect();
        for n in [
            "encoder.initial_block.conv.weight",
            "encoder.initial_block.bn.running_var",
            "encoder.layers.1.conv3x1_1.weight",
            "encoder.layers.14.conv1x3_2.bias",
            "encoder.output_conv.weight",
            "decoders.0.layers.0.conv.weight",
            "decoders.1.output_conv.bias",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing");
        }
    }

    #[test]
    fn forward_shapes_and_init_output() {
        let w = Weights::new(DType::F32, &Device::Cpu);
        let net = BranchedErfnet::new(&w, 2, 0).unwrap();
        w.init_pytorch(1).unwrap();
        w.init_output(2, 1.0).unwrap();
        let x = Tensor::zeros((2, 1, 32, 24), DType::F32, &Device::Cpu).unwrap();
        let y = net.forward(&x, Mode::Eval).unwrap();
        assert_eq!(y.dims(), &[2, 5, 32, 24]);
        // Offsets 0 and sigma 1 everywhere at initialisation.
        let first: Vec<f32> = y
            .narrow(1, 0, 4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let hw = 32 * 24;
        assert!(first[..2 * hw].iter().all(|&v| v == 0.0));
        assert!(first[2 * hw..4 * hw].iter().all(|&v| v == 1.0));
    }
}
