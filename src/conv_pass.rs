//! A convolution's three passes and their geometry, in the terms cuDNN
//! uses: what the model's device convolutions (model/device_conv.rs) ask
//! for and what src/cuda/cudnn.rs computes.

use candle_core::Result;

/// Which of a convolution's three computations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// (x, w) → y
    Forward,
    /// (dy, w) → dx
    BackwardData,
    /// (x, dy) → dw
    BackwardFilter,
}

/// A convolution x (N, C, H, W) ⋆ w (K, C, kh, kw) → y (N, K, OH, OW),
/// cross-correlation as PyTorch's Conv2d, with padding, stride and
/// dilation per axis (y, x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub y: [usize; 4],
    pub pad: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
}

impl Problem {
    /// The convolution of input dims `x` by weight dims `w` with `pad`,
    /// `stride` and `dilation` per axis (y, x).
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        pad: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<Problem> {
        if x[1] != w[1] || w[2] == 0 || w[3] == 0 || stride.contains(&0) || dilation.contains(&0) {
            candle_core::bail!(
                "convolution of {x:?} by a weight {w:?} (stride {stride:?}, dilation {dilation:?})"
            );
        }
        let out = |axis: usize| {
            let (size, k) = (x[2 + axis], w[2 + axis]);
            let span = dilation[axis] * (k - 1) + 1;
            (size + 2 * pad[axis] >= span).then(|| (size + 2 * pad[axis] - span) / stride[axis] + 1)
        };
        let (Some(oh), Some(ow)) = (out(0), out(1)) else {
            candle_core::bail!("a {}×{} kernel does not fit an input of {x:?}", w[2], w[3]);
        };
        Ok(Problem {
            x,
            w,
            y: [x[0], w[0], oh, ow],
            pad,
            stride,
            dilation,
        })
    }

    /// PyTorch's ConvTranspose2d of `x_t` (N, Cin, h, w) by `w` (Cin, Cout,
    /// kh, kw) as the convolution whose input gradient it is: that
    /// convolution maps (N, Cout, H, W) — the output here — to `x_t`.
    pub fn transposed(
        x_t: [usize; 4],
        w: [usize; 4],
        pad: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        output_padding: usize,
    ) -> Result<Problem> {
        let size = |axis: usize| {
            let n = x_t[2 + axis].max(1);
            ((n - 1) * stride[axis]
                + dilation[axis] * (w[2 + axis].max(1) - 1)
                + output_padding
                + 1)
            .checked_sub(2 * pad[axis])
        };
        let (Some(h), Some(wd)) = (size(0), size(1)) else {
            candle_core::bail!("transposed convolution of {x_t:?}: padding larger than its output");
        };
        let p = Problem::new([x_t[0], w[1], h, wd], w, pad, stride, dilation)?;
        if p.y != x_t {
            candle_core::bail!(
                "transposed convolution of {x_t:?} by {w:?}: shapes do not round-trip"
            );
        }
        Ok(p)
    }

    /// The dims a pass writes.
    pub fn output(&self, pass: Pass) -> [usize; 4] {
        match pass {
            Pass::Forward => self.y,
            Pass::BackwardData => self.x,
            Pass::BackwardFilter => self.w,
        }
    }

    /// The dims of a pass's two inputs, in order.
    pub fn inputs(&self, pass: Pass) -> ([usize; 4], [usize; 4]) {
        match pass {
            Pass::Forward => (self.x, self.w),
            Pass::BackwardData => (self.y, self.w),
            Pass::BackwardFilter => (self.x, self.y),
        }
    }
}
