//! Running the network on whole images: normalise, pad to a multiple of 8
//! (reflecting, as the crops do), forward in eval mode, crop back.

use candle_core::{Device, Tensor};

use super::prediction::Prediction;
use crate::data::crops::reflect;
use crate::data::Grid;
use crate::model::{BranchedErfnet, Mode};

/// The network's decoded prediction for a normalised image of any size.
pub fn predict(
    net: &BranchedErfnet,
    image: &Grid<f32>,
    device: &Device,
) -> candle_core::Result<Prediction> {
    let (w, h) = (image.width, image.height);
    let (pw, ph) = (w.div_ceil(8) * 8, h.div_ceil(8) * 8);
    let mut padded = Vec::with_capacity(pw * ph);
    for y in 0..ph {
        let sy = reflect(y as isize, h);
        for x in 0..pw {
            padded.push(image.get(sy, reflect(x as isize, w)));
        }
    }
    let x = Tensor::from_vec(padded, (1, 1, ph, pw), device)?;
    let out = net.forward(&x, Mode::Eval)?.detach();
    let c = out.dim(1)?;
    let raw: Vec<f32> = out.flatten_all()?.to_vec1()?;
    let mut cropped = Vec::with_capacity(c * w * h);
    for ch in 0..c {
        for y in 0..h {
            let row = (ch * ph + y) * pw;
            cropped.extend_from_slice(&raw[row..row + w]);
        }
    }
    Ok(Prediction::from_output(&cropped, w, h, net.n_sigma()))
}
