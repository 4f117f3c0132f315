//! EmbedSeg's BranchedERFNet_3d (erfnet_3d.py, BranchedERFNet_3d.py) with
//! its parameter names: one 3D ERFNet encoder and two decoders — [offset x,
//! y, z, sigma × n_sigma] and [seed] — concatenated along channels. Not yet
//! trained or predicted with by any command (issue 32).

use std::sync::Mutex;

use candle_core::{Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::layers::{branches, dropout_mask, BatchNorm, Builders, Mode};
use super::layers3d::{max_pool_2x2x2, Axis, ConvAxis, ConvDown, ConvTransposeUp};
use super::weights::Weights;

const BN_EPS: f64 = 1e-3;

/// Batch norm over a volume: the 2D layer over (N, C, D·H, W).
fn bn3d(bn: &BatchNorm, x: &Tensor, mode: Mode, relu: bool) -> Result<Tensor> {
    let (n, c, d, h, w) = x.dims5()?;
    bn.forward(&x.reshape((n, c, d * h, w))?, mode, relu)?
        .reshape((n, c, d, h, w))
}

/// cat(conv 3×3×3 stride 2, maxpool 2×2×2) → BN → ReLU.
struct Downsampler3d {
    conv: ConvDown,
    bn: BatchNorm,
}

impl Downsampler3d {
    fn new(b: &Builders, cin: usize, cout: usize) -> Result<Downsampler3d> {
        Ok(Downsampler3d {
            conv: ConvDown::new(&b.pp("conv"), cin, cout - cin)?,
            bn: BatchNorm::new(&b.pp("bn"), cout, BN_EPS)?,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = Tensor::cat(&[&self.conv.forward(x)?, &max_pool_2x2x2(x)?], 1)?;
        bn3d(&self.bn, &y, mode, true)
    }
}

/// The factorised residual block: 3×1×1, ReLU, 1×3×1, ReLU, 1×1×3, BN,
/// ReLU, the three again dilated, BN, dropout, + input, ReLU.
struct NonBottleneck3d {
    first: [ConvAxis; 3],
    bn1: BatchNorm,
    second: [ConvAxis; 3],
    bn2: BatchNorm,
    dropout: f64,
}

impl NonBottleneck3d {
    fn new(b: &Builders, ch: usize, dropout: f64, dilation: usize) -> Result<NonBottleneck3d> {
        let triple = |suffix: &str, d: usize| -> Result<[ConvAxis; 3]> {
            Ok([
                ConvAxis::new(&b.pp(format!("conv3x1x1_{suffix}")), ch, ch, Axis::Z, d)?,
                ConvAxis::new(&b.pp(format!("conv1x3x1_{suffix}")), ch, ch, Axis::Y, d)?,
                ConvAxis::new(&b.pp(format!("conv1x1x3_{suffix}")), ch, ch, Axis::X, d)?,
            ])
        };
        Ok(NonBottleneck3d {
            first: triple("1", 1)?,
            bn1: BatchNorm::new(&b.pp("bn1"), ch, BN_EPS)?,
            second: triple("2", dilation)?,
            bn2: BatchNorm::new(&b.pp("bn2"), ch, BN_EPS)?,
            dropout,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
        let y = self.first[0].forward(x, true)?;
        let y = self.first[1].forward(&y, true)?;
        let y = bn3d(&self.bn1, &self.first[2].forward(&y, false)?, mode, true)?;
        let y = self.second[0].forward(&y, true)?;
        let y = self.second[1].forward(&y, true)?;
        let y = self.second[2].forward(&y, false)?;
        let (n, c, d, h, w) = y.dims5()?;
        let mut y = self
            .bn2
            .forward(&y.reshape((n, c, d * h, w))?, mode, false)?;
        if self.dropout > 0.0 && mode == Mode::Train {
            let m = dropout_mask(n, c, self.dropout, rng);
            let m = Tensor::from_vec(m, (n, c, 1, 1), y.device())?.to_dtype(y.dtype())?;
            y = y.broadcast_mul(&m)?;
        }
        (y.reshape((n, c, d, h, w))? + x)?.relu()
    }
}

/// ConvTranspose3d 3, stride 2 → BN → ReLU.
struct Upsampler3d {
    conv: ConvTransposeUp,
    bn: BatchNorm,
}

impl Upsampler3d {
    fn new(b: &Builders, cin: usize, cout: usize) -> Result<Upsampler3d> {
        Ok(Upsampler3d {
            conv: ConvTransposeUp::new(&b.pp("conv"), cin, cout, 3)?,
            bn: BatchNorm::new(&b.pp("bn"), cout, BN_EPS)?,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        bn3d(&self.bn, &self.conv.forward(x)?, mode, true)
    }
}

enum Layer3d {
    Down(Downsampler3d),
    Block(Box<NonBottleneck3d>),
    Up(Upsampler3d),
}

impl Layer3d {
    fn forward(&self, x: &Tensor, mode: Mode, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
        match self {
            Layer3d::Down(l) => l.forward(x, mode),
            Layer3d::Block(l) => l.forward(x, mode, rng),
            Layer3d::Up(l) => l.forward(x, mode),
        }
    }
}

fn block(b: &Builders, i: usize, ch: usize, dropout: f64, dilation: usize) -> Result<Layer3d> {
    Ok(Layer3d::Block(Box::new(NonBottleneck3d::new(
        &b.pp(i),
        ch,
        dropout,
        dilation,
    )?)))
}

struct Encoder3d {
    initial_block: Downsampler3d,
    layers: Vec<Layer3d>,
}

impl Encoder3d {
    fn new(b: &Builders, input_channels: usize, num_classes: usize) -> Result<Encoder3d> {
        let l = b.pp("layers");
        let mut layers = vec![Layer3d::Down(Downsampler3d::new(&l.pp(0), 16, 64)?)];
        for _ in 0..5 {
            layers.push(block(&l, layers.len(), 64, 0.03, 1)?);
        }
        layers.push(Layer3d::Down(Downsampler3d::new(
            &l.pp(layers.len()),
            64,
            128,
        )?));
        for _ in 0..2 {
            for dilation in [2, 4, 8, 16] {
                layers.push(block(&l, layers.len(), 128, 0.3, dilation)?);
            }
        }
        // EmbedSeg's encoder has an output convolution its forward pass
        // never uses (only_encode); its weights are part of a checkpoint.
        let o = b.pp("output_conv");
        o.params.get_with_hints(
            (num_classes, 128, 1, 1, 1),
            "weight",
            candle_nn::Init::Const(0.0),
        )?;
        o.params
            .get_with_hints(num_classes, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Encoder3d {
            initial_block: Downsampler3d::new(&b.pp("initial_block"), input_channels, 16)?,
            layers,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
        let mut y = self.initial_block.forward(x, mode)?;
        for layer in &self.layers {
            y = layer.forward(&y, mode, rng)?;
        }
        Ok(y)
    }
}

struct Decoder3d {
    layers: Vec<Layer3d>,
    output_conv: ConvTransposeUp,
}

impl Decoder3d {
    fn new(b: &Builders, num_classes: usize) -> Result<Decoder3d> {
        let l = b.pp("layers");
        Ok(Decoder3d {
            layers: vec![
                Layer3d::Up(Upsampler3d::new(&l.pp(0), 128, 64)?),
                block(&l, 1, 64, 0.0, 1)?,
                block(&l, 2, 64, 0.0, 1)?,
                Layer3d::Up(Upsampler3d::new(&l.pp(3), 64, 16)?),
                block(&l, 4, 16, 0.0, 1)?,
                block(&l, 5, 16, 0.0, 1)?,
            ],
            output_conv: ConvTransposeUp::new(&b.pp("output_conv"), 16, num_classes, 2)?,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
        let mut y = x.clone();
        for layer in &self.layers {
            y = layer.forward(&y, mode, rng)?;
        }
        self.output_conv.forward(&y)
    }
}

/// BranchedERFNet_3d for one input channel: (N, 1, D, H, W) with D, H and W
/// multiples of 8 → (N, 3 + n_sigma + 1, D, H, W).
pub struct BranchedErfnet3d {
    encoder: Encoder3d,
    decoders: Vec<Decoder3d>,
    dropout_rng: Mutex<ChaCha8Rng>,
}

impl BranchedErfnet3d {
    /// Builds the network's tensors in `weights` (zeros until initialised or loaded).
    pub fn new(weights: &Weights, n_sigma: usize, seed: u64) -> Result<BranchedErfnet3d> {
        let b = weights.builders();
        let num_classes = [3 + n_sigma, 1];
        let d = b.pp("decoders");
        Ok(BranchedErfnet3d {
            encoder: Encoder3d::new(&b.pp("encoder"), 1, num_classes.iter().sum())?,
            decoders: vec![
                Decoder3d::new(&d.pp(0), num_classes[0])?,
                Decoder3d::new(&d.pp(1), num_classes[1])?,
            ],
            dropout_rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let features = self.encoder.forward(x, mode, &self.dropout_rng)?;
        branches(&self.decoders, &features, |d, f| {
            d.forward(f, mode, &self.dropout_rng)
        })
    }
}
