//! The pixel-coordinate grid the embeddings live in: channel 0 is x (the
//! column), channel 1 is y (the row), both in the same units — EmbedSeg's
//! spacing of 1/1023 (linspace(0, 1, 1024)) — and it extends to any size,
//! unlike EmbedSeg's fixed 1024 × 1024 buffer.

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
