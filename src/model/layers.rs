//! ERFNet's building layers: convolutions on the custom ops, batch norm with
//! PyTorch's running statistics, channel dropout, and 2×2 max pooling with
//! PyTorch's gradient (to the first maximum of each window).

use std::sync::Mutex;

use candle_core::{Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ops::{conv2d, conv_transpose2d, Geom};

/// How a forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics (and running-statistics updates) and channel dropout.
    Train,
    /// Training without dropout: for comparisons with a reference.
    TrainNoDropout,
    /// Running statistics, no dropout.
    Eval,
}

impl Mode {
    pub fn is_train(self) -> bool {
        self != Mode::Eval
    }
}

/// Where a layer gets its parameters (`weight`, `bias`) and buffers (`running_mean`, …).
pub struct Builders<'a> {
    pub params: VarBuilder<'a>,
    pub buffers: VarBuilder<'a>,
    pub buffer_map: &'a candle_nn::VarMap,
}

impl<'a> Builders<'a> {
    pub fn pp(&self, name: impl ToString) -> Builders<'a> {
        let name = name.to_string();
        Builders {
            params: self.params.pp(&name),
            buffers: self.buffers.pp(&name),
            buffer_map: self.buffer_map,
        }
    }

    /// Parameters start at zero; `Weights::init_pytorch` gives them their
    /// seeded PyTorch initialisation once the model is built.
    fn param(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        self.params.get_with_hints(shape, name, Init::Const(0.0))
    }

    fn buffer(&self, shape: usize, name: &str, value: f64) -> Result<Var> {
        self.buffers
            .get_with_hints(shape, name, Init::Const(value))?;
        let path = format!("{}.{name}", self.buffers.prefix());
        let map = self.buffer_map.data().lock().expect("buffer map lock");
        Ok(map.get(&path).expect("the buffer was just created").clone())
    }
}

pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    geom: Geom,
}

impl Conv {
    pub fn new(b: &Builders, cin: usize, cout: usize, geom: Geom) -> Result<Conv> {
        Ok(Conv {
            weight: b.param(&[cout, cin, geom.kh, geom.kw], "weight")?,
            bias: b.param(&[cout], "bias")?,
            geom,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d(x, &self.weight, &self.bias, self.geom)
    }
}

/// PyTorch's ConvTranspose2d: weight (Cin, Cout, K, K).
pub struct ConvTranspose {
    weight: Tensor,
    bias: Tensor,
    geom: Geom,
    output_padding: usize,
}

impl ConvTranspose {
    pub fn new(
        b: &Builders,
        cin: usize,
        cout: usize,
        geom: Geom,
        output_padding: usize,
    ) -> Result<ConvTranspose> {
        Ok(ConvTranspose {
            weight: b.param(&[cin, cout, geom.kh, geom.kw], "weight")?,
            bias: b.param(&[cout], "bias")?,
            geom,
            output_padding,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv_transpose2d(x, &self.weight, &self.bias, self.geom, self.output_padding)
    }
}

/// BatchNorm2d (momentum 0.1, unbiased running variance, as PyTorch).
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
}

const MOMENTUM: f64 = 0.1;

impl BatchNorm {
    pub fn new(b: &Builders, channels: usize, eps: f64) -> Result<BatchNorm> {
        Ok(BatchNorm {
            weight: b
                .params
                .get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: b
                .params
                .get_with_hints(channels, "bias", Init::Const(0.0))?,
            running_mean: b.buffer(channels, "running_mean", 0.0)?,
            running_var: b.buffer(channels, "running_var", 1.0)?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        let per_channel = |t: &Tensor| t.reshape((1, c, 1, 1));
        let (mean, var) = if mode.is_train() {
            let (n, _, h, w) = x.dims4()?;
            let mean = x.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
            let centered = x.broadcast_sub(&mean)?;
            let var = centered
                .sqr()?
                .mean_keepdim(0)?
                .mean_keepdim(2)?
                .mean_keepdim(3)?;
            let count = (n * h * w) as f64;
            let unbiased = (var.detach().flatten_all()? * (count / (count - 1.0).max(1.0)))?;
            let rm = ((self.running_mean.as_tensor() * (1.0 - MOMENTUM))?
                + (mean.detach().flatten_all()? * MOMENTUM)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - MOMENTUM))? + (unbiased * MOMENTUM)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            (mean, var)
        } else {
            (
                per_channel(self.running_mean.as_tensor())?,
                per_channel(self.running_var.as_tensor())?,
            )
        };
        let scale = per_channel(&self.weight)?.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        x.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&per_channel(&self.bias)?)
    }
}

/// Dropout2d: zeroes whole channels with probability p, scales the rest by 1/(1−p).
pub fn dropout2d(x: &Tensor, p: f64, rng: &Mutex<ChaCha8Rng>) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    let mut rng = rng.lock().expect("dropout rng lock");
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f64> = (0..n * c)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    let mask = Tensor::from_vec(mask, (n, c, 1, 1), x.device())?.to_dtype(x.dtype())?;
    x.broadcast_mul(&mask)
}

/// 2×2 max pooling, stride 2, on even sizes. The gradient goes to the first
/// maximum of each window in row-major order, as PyTorch's does (candle's
/// own max_pool2d spreads it over the window).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let windows = x
        .reshape((n, c, h / 2, 2, w / 2, 2))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((n, c, h / 2, w / 2, 4))?;
    let first_max = windows.argmax_keepdim(D::Minus1)?;
    windows.gather(&first_max, D::Minus1)?.squeeze(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn max_pool_takes_the_first_maximum_and_routes_its_gradient() {
        // One window of four zeros (a ReLU's usual tie) and one with a clear maximum.
        let x = Var::from_vec(
            vec![0.0f64, 0.0, 1.0, 3.0, 0.0, 0.0, 2.0, -1.0],
            (1, 1, 2, 4),
            &Device::Cpu,
        )
        .unwrap();
        let y = max_pool2x2(&x).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            vec![0.0, 3.0]
        );
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx = g
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(gx, vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn dropout_zeroes_whole_channels() {
        let x = Tensor::ones((2, 50, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let rng = Mutex::new(rand::SeedableRng::seed_from_u64(1));
        let y = dropout2d(&x, 0.3, &rng).unwrap();
        let sums: Vec<f32> = y
            .sum((2, 3))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let zeros = sums.iter().filter(|&&s| s == 0.0).count();
        assert!(sums
            .iter()
            .all(|&s| s == 0.0 || (s - 9.0 / 0.7).abs() < 1e-4));
        assert!(
            (15..45).contains(&zeros),
            "{zeros} of 100 channels dropped at p = 0.3"
        );
    }
}
