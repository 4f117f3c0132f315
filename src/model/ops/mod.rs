//! Custom CPU ops for BranchedERFNet (candle CustomOps with their backward).
//! One file per op; each states its layout and its backward.

pub(crate) mod check;
pub mod conv;
mod conv_kernels;
mod elem;
pub mod im2col;
mod matmul;

pub use conv::{conv2d, conv_transpose2d};
pub use im2col::Geom;

#[cfg(test)]
mod conv_tests;
