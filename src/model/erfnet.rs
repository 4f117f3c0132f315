//! ERFNet's blocks (Romera et al. 2018) as EmbedSeg's erfnet.py defines them,
//! with its parameter names.

use std::sync::Mutex;

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::layers::{dropout_mask, max_pool2x2, BatchNorm, Builders, Conv, ConvTranspose, Mode};
use super::ops::Geom;
use crate::backend::Backend;

const BN_EPS: f64 = 1e-3;

/// cat(conv3×3 stride 2, maxpool 2×2) → BN → ReLU.
pub struct Downsampler {
    conv: Conv,
    bn: BatchNorm,
    backend: Backend,
}

impl Downsampler {
    pub fn new(b: &Builders, cin: usize, cout: usize) -> Result<Downsampler> {
        Ok(Downsampler {
            conv: Conv::new(
                &b.pp("conv"),
                cin,
                cout - cin,
                Geom::kernel(3, 3).stride(2).pad(1, 1),
            )?,
            bn: BatchNorm::new(&b.pp("bn"), cout, BN_EPS)?,
            backend: b.backend,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let pooled = max_pool2x2(x, self.backend)?;
        let y = Tensor::cat(&[&self.conv.forward(x, false)?, &pooled], 1)?;
        self.bn.forward(&y, mode, true)
    }
}

/// The factorised residual block: 3×1, ReLU, 1×3, BN, ReLU, dilated 3×1,
/// ReLU, dilated 1×3, BN, dropout, + input, ReLU.
pub struct NonBottleneck1d {
    conv3x1_1: Conv,
    conv1x3_1: Conv,
    bn1: BatchNorm,
    conv3x1_2: Conv,
    conv1x3_2: Conv,
    bn2: BatchNorm,
    dropout: f64,
    /// For inference: the 1×3 convolutions with their batch norms folded in.
    folded: Option<(Conv, Conv)>,
}

impl NonBottleneck1d {
    pub fn new(b: &Builders, ch: usize, dropout: f64, dilation: usize) -> Result<NonBottleneck1d> {
        let d = dilation;
        Ok(NonBottleneck1d {
            conv3x1_1: Conv::new(&b.pp("conv3x1_1"), ch, ch, Geom::kernel(3, 1).pad(1, 0))?,
            conv1x3_1: Conv::new(&b.pp("conv1x3_1"), ch, ch, Geom::kernel(1, 3).pad(0, 1))?,
            bn1: BatchNorm::new(&b.pp("bn1"), ch, BN_EPS)?,
            conv3x1_2: Conv::new(
                &b.pp("conv3x1_2"),
                ch,
                ch,
                Geom::kernel(3, 1).pad(d, 0).dilate(d, 1),
            )?,
            conv1x3_2: Conv::new(
                &b.pp("conv1x3_2"),
                ch,
                ch,
                Geom::kernel(1, 3).pad(0, d).dilate(1, d),
            )?,
            bn2: BatchNorm::new(&b.pp("bn2"), ch, BN_EPS)?,
            dropout,
            folded: None,
        })
    }

    /// Folds the batch norms into the convolutions before them, for eval mode.
    pub fn fold(&mut self) -> Result<()> {
        self.folded = Some((
            self.conv1x3_1.fold(&self.bn1)?,
            self.conv1x3_2.fold(&self.bn2)?,
        ));
        Ok(())
    }

    pub fn forward(&self, x: &Tensor, mode: Mode, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
        if let (Mode::Eval, Some((c1, c2))) = (mode, &self.folded) {
            let y = self.conv3x1_1.forward(x, true)?;
            let y = c1.forward(&y, true)?;
            let y = self.conv3x1_2.forward(&y, true)?;
            return c2.forward_residual_relu(&y, x);
        }
        let y = self.conv3x1_1.forward(x, true)?;
        let y = self
            .bn1
            .forward(&self.conv1x3_1.forward(&y, false)?, mode, true)?;
        let y = self.conv3x1_2.forward(&y, true)?;
        let mask = if self.dropout > 0.0 && mode == Mode::Train {
            let (n, c, _, _) = x.dims4()?;
            Some(dropout_mask(n, c, self.dropout, rng))
        } else {
            None
        };
        self.bn2
            .forward_add_relu(&self.conv1x3_2.forward(&y, false)?, x, mode, mask)
    }
}

/// A layer of the encoder or decoder list.
pub enum Layer {
    Down(Downsampler),
    Block(Box<NonBottleneck1d>),
    Up(Upsampler),
}

impl Layer {
    fn fold(&mut self) -> Result<()> {
        match self {
            Layer::Down(_) => Ok(()),
            Layer::Block(l) => l.fold(),
            Layer::Up(l) => l.fold(),
        }
    }

    fn forward(&self, x: &Tensor, mode: Mode, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
        match self {
            Layer::Down(l) => l.forward(x, mode),
            Layer::Block(l) => l.forward(x, mode, rng),
            Layer::Up(l) => l.forward(x, mode),
        }
    }
}

pub struct Encoder {
    initial_block: Downsampler,
    layers: Vec<Layer>,
    /// Present for EmbedSeg's state_dict; unused when decoding.
    _output_conv: Conv,
}

impl Encoder {
    pub fn new(b: &Builders, input_channels: usize, num_classes: usize) -> Result<Encoder> {
        let mut layers = Vec::new();
        let l = b.pp("layers");
        let mut add = |layer: Layer| layers.push(layer);
        add(Layer::Down(Downsampler::new(&l.pp(0), 16, 64)?));
        for i in 1..=5 {
            add(Layer::Block(Box::new(NonBottleneck1d::new(
                &l.pp(i),
                64,
                0.03,
                1,
            )?)));
        }
        add(Layer::Down(Downsampler::new(&l.pp(6), 64, 128)?));
        let mut i = 7;
        for _ in 0..2 {
            for d in [2, 4, 8, 16] {
                add(Layer::Block(Box::new(NonBottleneck1d::new(
                    &l.pp(i),
                    128,
                    0.3,
                    d,
                )?)));
                i += 1;
            }
        }
        Ok(Encoder {
            initial_block: Downsampler::new(&b.pp("initial_block"), input_channels, 16)?,
            layers,
            _output_conv: Conv::new(&b.pp("output_conv"), 128, num_classes, Geom::kernel(1, 1))?,
        })
    }

    /// Folds batch norms into convolutions for eval mode (inference only).
    pub fn fold(&mut self) -> Result<()> {
        self.layers.iter_mut().try_for_each(Layer::fold)
    }

    pub fn forward(&self, x: &Tensor, mode: Mode, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
        let mut y = self.initial_block.forward(x, mode)?;
        for layer in &self.layers {
            y = layer.forward(&y, mode, rng)?;
        }
        Ok(y)
    }
}

/// ConvTranspose 3×3 stride 2 → BN → ReLU.
pub struct Upsampler {
    conv: ConvTranspose,
    bn: BatchNorm,
    /// For inference: the batch norm folded into the convolution.
    folded: Option<ConvTranspose>,
}

impl Upsampler {
    pub fn new(b: &Builders, cin: usize, cout: usize) -> Result<Upsampler> {
        Ok(Upsampler {
            conv: ConvTranspose::new(
                &b.pp("conv"),
                cin,
                cout,
                Geom::kernel(3, 3).stride(2).pad(1, 1),
                1,
            )?,
            bn: BatchNorm::new(&b.pp("bn"), cout, BN_EPS)?,
            folded: None,
        })
    }

    pub fn fold(&mut self) -> Result<()> {
        self.folded = Some(self.conv.fold(&self.bn)?);
        Ok(())
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if let (Mode::Eval, Some(conv)) = (mode, &self.folded) {
            return conv.forward_act(x, true);
        }
        self.bn.forward(&self.conv.forward(x)?, mode, true)
    }
}

pub struct Decoder {
    layers: Vec<Layer>,
    output_conv: ConvTranspose,
}

impl Decoder {
    pub fn new(b: &Builders, num_classes: usize) -> Result<Decoder> {
        let l = b.pp("layers");
        Ok(Decoder {
            layers: vec![
                Layer::Up(Upsampler::new(&l.pp(0), 128, 64)?),
                Layer::Block(Box::new(NonBottleneck1d::new(&l.pp(1), 64, 0.0, 1)?)),
                Layer::Block(Box::new(NonBottleneck1d::new(&l.pp(2), 64, 0.0, 1)?)),
                Layer::Up(Upsampler::new(&l.pp(3), 64, 16)?),
                Layer::Block(Box::new(NonBottleneck1d::new(&l.pp(4), 16, 0.0, 1)?)),
                Layer::Block(Box::new(NonBottleneck1d::new(&l.pp(5), 16, 0.0, 1)?)),
            ],
            output_conv: ConvTranspose::new(
                &b.pp("output_conv"),
                16,
                num_classes,
                Geom::kernel(2, 2).stride(2),
                0,
            )?,
        })
    }

    pub fn fold(&mut self) -> Result<()> {
        self.layers.iter_mut().try_for_each(Layer::fold)
    }

    pub fn forward(&self, x: &Tensor, mode: Mode, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
        let mut y = x.clone();
        for layer in &self.layers {
            y = layer.forward(&y, mode, rng)?;
        }
        self.output_conv.forward(&y)
    }
}
