//! The 3D network's output for one stack, decoded: embeddings in xy-pixel
//! units — x + tanh(offset_x)/pixel, y + tanh(offset_y)/pixel and
//! z·anisotropy + tanh(offset_z)/pixel, so that distances along z count as
//! many xy pixels as they span — sigma volumes and seed probabilities.

use crate::loss::xym::PIXEL;

#[derive(Clone, Debug, PartialEq)]
pub struct Prediction3d {
    pub depth: usize,
    pub height: usize,
    pub width: usize,
    /// z spacing over xy spacing.
    pub anisotropy: f64,
    pub ex: Vec<f32>,
    pub ey: Vec<f32>,
    pub ez: Vec<f32>,
    /// n_sigma volumes of raw sigma (1, or 3: x, y, z).
    pub sigma: Vec<Vec<f32>>,
    /// sigmoid(seed logit).
    pub seed: Vec<f32>,
}

impl Prediction3d {
    pub fn empty(shape: (usize, usize, usize), anisotropy: f64, n_sigma: usize) -> Prediction3d {
        let n = shape.0 * shape.1 * shape.2;
        Prediction3d {
            depth: shape.0,
            height: shape.1,
            width: shape.2,
            anisotropy,
            ex: vec![0.0; n],
            ey: vec![0.0; n],
            ez: vec![0.0; n],
            sigma: vec![vec![0.0; n]; n_sigma],
            seed: vec![0.0; n],
        }
    }

    /// From raw output channels [offset x, y, z, sigma…, seed] (C × D × H × W).
    pub fn from_output(
        raw: &[f32],
        shape: (usize, usize, usize),
        anisotropy: f64,
        n_sigma: usize,
    ) -> Prediction3d {
        let (d, h, w) = shape;
        let n = d * h * w;
        assert_eq!(
            raw.len(),
            (4 + n_sigma) * n,
            "output channels are 4 + n_sigma"
        );
        let plane = |c: usize| &raw[c * n..(c + 1) * n];
        let inv = (1.0 / PIXEL) as f32;
        let embed = |c: usize, at: &dyn Fn(usize) -> f32| -> Vec<f32> {
            plane(c)
                .iter()
                .enumerate()
                .map(|(i, &o)| at(i) + o.tanh() * inv)
                .collect()
        };
        let a = anisotropy as f32;
        Prediction3d {
            depth: d,
            height: h,
            width: w,
            anisotropy,
            ex: embed(0, &|i| (i % w) as f32),
            ey: embed(1, &|i| (i / w % h) as f32),
            ez: embed(2, &|i| (i / (w * h)) as f32 * a),
            sigma: (0..n_sigma).map(|c| plane(3 + c).to_vec()).collect(),
            seed: plane(3 + n_sigma)
                .iter()
                .map(|&v| 1.0 / (1.0 + (-v).exp()))
                .collect(),
        }
    }

    /// The clustering bandwidth at voxel i along x, y and z, in 1/pixel²:
    /// exp(10σ) in grid units, times pixel².
    pub fn bandwidth(&self, i: usize) -> [f32; 3] {
        let s = |c: usize| ((10.0 * self.sigma[c][i] as f64).exp() * PIXEL * PIXEL) as f32;
        if self.sigma.len() == 1 {
            [s(0); 3]
        } else {
            [s(0), s(1), s(2)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_count_z_in_xy_pixels() {
        // One 2×1×2 stack; voxel (z 1, y 0, x 1) offset by tanh⁻¹(3·PIXEL)
        // along z: 1·2.5 + 3.
        let (d, h, w) = (2, 1, 2);
        let n = d * h * w;
        let mut raw = vec![0.0f32; 5 * n];
        raw[2 * n + 3] = (3.0 * PIXEL).atanh() as f32;
        raw[4 * n + 3] = 10.0;
        let p = Prediction3d::from_output(&raw, (d, h, w), 2.5, 1);
        assert_eq!((p.ex[3], p.ey[3]), (1.0, 0.0));
        assert!((p.ez[3] - 5.5).abs() < 1e-3, "{}", p.ez[3]);
        assert_eq!(p.ez[1], 0.0);
        assert_eq!(p.ez[2], 2.5);
        assert!(p.seed[3] > 0.9999 && p.seed[0] == 0.5);
        let b = p.bandwidth(0);
        assert_eq!(b[0], b[2]);
        assert!((b[0] as f64 - PIXEL * PIXEL).abs() < 1e-12);
    }
}
