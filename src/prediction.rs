//! The network's output for one image, decoded: embeddings in pixel units
//! (x + tanh(offset_x)/pixel, y + tanh(offset_y)/pixel), sigma planes and
//! seed probabilities.

use crate::loss::xym::PIXEL;

#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub width: usize,
    pub height: usize,
    /// Embedded x (column) of every pixel, in pixels.
    pub ex: Vec<f32>,
    /// Embedded y (row) of every pixel, in pixels.
    pub ey: Vec<f32>,
    /// n_sigma planes of raw sigma.
    pub sigma: Vec<Vec<f32>>,
    /// sigmoid(seed logit).
    pub seed: Vec<f32>,
}

impl Prediction {
    pub fn empty(width: usize, height: usize, n_sigma: usize) -> Prediction {
        let n = width * height;
        Prediction {
            width,
            height,
            ex: vec![0.0; n],
            ey: vec![0.0; n],
            sigma: vec![vec![0.0; n]; n_sigma],
            seed: vec![0.0; n],
        }
    }

    /// From raw output channels [offset x, offset y, sigma…, seed] (C × H × W).
    pub fn from_output(raw: &[f32], width: usize, height: usize, n_sigma: usize) -> Prediction {
        let n = width * height;
        assert_eq!(
            raw.len(),
            (3 + n_sigma) * n,
            "output channels are 3 + n_sigma"
        );
        let plane = |c: usize| &raw[c * n..(c + 1) * n];
        let inv = (1.0 / PIXEL) as f32;
        let ex = plane(0)
            .iter()
            .enumerate()
            .map(|(i, &o)| (i % width) as f32 + o.tanh() * inv)
            .collect();
        let ey = plane(1)
            .iter()
            .enumerate()
            .map(|(i, &o)| (i / width) as f32 + o.tanh() * inv)
            .collect();
        Prediction {
            width,
            height,
            ex,
            ey,
            sigma: (0..n_sigma).map(|c| plane(2 + c).to_vec()).collect(),
            seed: plane(2 + n_sigma)
                .iter()
                .map(|&v| 1.0 / (1.0 + (-v).exp()))
                .collect(),
        }
    }

    /// The clustering bandwidth at pixel i, per axis, in 1/pixel²:
    /// exp(10σ) in grid units, times pixel².
    pub fn bandwidth(&self, i: usize) -> (f32, f32) {
        let s = |c: usize| ((10.0 * self.sigma[c][i] as f64).exp() * PIXEL * PIXEL) as f32;
        if self.sigma.len() == 1 {
            (s(0), s(0))
        } else {
            (s(0), s(1))
        }
    }
}
