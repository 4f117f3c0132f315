//! The pixel-coordinate grid the embeddings live in: channel 0 is x (the
//! column), channel 1 is y (the row), both in the same units — EmbedSeg's
//! spacing of 1/1023 (linspace(0, 1, 1024)) — and it extends to any size,
//! unlike EmbedSeg's fixed 1024 × 1024 buffer. Stacks add z, in units of
//! the anisotropy times those of y and x (EmbedSeg's create_configs: z runs
//! over linspace(0, (n_z − 1)/(n_x − 1)·anisotropy, n_z)).

use candle_core::{DType, Device, Result, Tensor};

/// Grid units per pixel.
pub const PIXEL: f64 = 1.0 / 1023.0;

/// (2, H·W): x then y of every pixel, row-major.
pub fn xym(h: usize, w: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut data = Vec::with_capacity(2 * h * w);
    for _y in 0..h {
        for x in 0..w {
            data.push(x as f64 * PIXEL);
        }
    }
    for y in 0..h {
        for _x in 0..w {
            data.push(y as f64 * PIXEL);
        }
    }
    Tensor::from_vec(data, (2, h * w), device)?.to_dtype(dtype)
}

/// (3, D·H·W): x, y then z of every voxel, row-major; z at `anisotropy`
/// times the spacing of y and x.
pub fn xyzm(
    d: usize,
    h: usize,
    w: usize,
    anisotropy: f64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let plane = h * w;
    let mut data = Vec::with_capacity(3 * d * plane);
    for _z in 0..d {
        data.extend((0..plane).map(|i| (i % w) as f64 * PIXEL));
    }
    for _z in 0..d {
        data.extend((0..plane).map(|i| (i / w) as f64 * PIXEL));
    }
    for z in 0..d {
        data.extend(std::iter::repeat_n(z as f64 * anisotropy * PIXEL, plane));
    }
    Tensor::from_vec(data, (3, d * plane), device)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xyzm_by_hand() {
        // 2 planes of 2×3, anisotropy 2.5: voxel (z 1, y 1, x 2) is the last.
        let g = xyzm(2, 2, 3, 2.5, DType::F64, &Device::Cpu).unwrap();
        let v: Vec<Vec<f64>> = g.to_vec2().unwrap();
        let last = 11;
        assert_eq!(v[0][last], 2.0 * PIXEL);
        assert_eq!(v[1][last], PIXEL);
        assert_eq!(v[2][last], 2.5 * PIXEL);
        assert_eq!((v[0][4], v[1][4], v[2][4]), (PIXEL, PIXEL, 0.0));
        assert_eq!(v[2][6], 2.5 * PIXEL);
        // Its x and y planes are the 2D grid's.
        let flat: Vec<Vec<f64>> = xym(2, 3, DType::F64, &Device::Cpu)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(v[0][..6], flat[0][..]);
        assert_eq!(v[1][6..], flat[1][..]);
    }
}
