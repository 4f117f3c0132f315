//! Custom CPU ops for BranchedERFNet (candle CustomOps with their backward).
//! One file per op; each states its layout and its backward.

pub mod batch_norm;
pub(crate) mod check;
pub mod conv;
mod conv_kernels;
mod elem;
pub mod im2col;
mod matmul;
pub mod max_pool;
mod shifted;
mod shifted_weight;
mod sums;
mod winograd;

pub use batch_norm::{batch_norm_act, batch_norm_add_relu, channel_sum, BnConfig};
pub use conv::{conv2d, conv2d_residual_relu, conv_transpose2d};
pub use im2col::Geom;
pub use max_pool::max_pool2x2;

#[cfg(test)]
mod conv_tests;
#[cfg(test)]
mod fused_tests;
