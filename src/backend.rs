//! Which kernels run the network, the loss and the optimiser. The choice is
//! made once, from the device, when they are built, and each of them
//! carries it: nothing below decides per call what to run.

use candle_core::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// esx's fused CPU ops: convolutions and batch norms as custom ops over
    /// gemm and rayon, the loss and its gradient in one host pass, Adam's
    /// moments in host f64. CPU tensors only.
    Fused,
    /// candle's own tensor ops, on whatever device the tensors live: the
    /// device-resident path CUDA runs (tests run it on the CPU, where it is
    /// checked against the fused one and against EmbedSeg).
    Native,
}

impl Backend {
    /// The CPU gets the fused ops; every other device candle's own.
    pub fn for_device(device: &Device) -> Backend {
        if device.is_cpu() {
            Backend::Fused
        } else {
            Backend::Native
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Fused => "fused CPU ops",
            Backend::Native => "candle ops (device-resident)",
        }
    }
}

/// Whether esx's own CUDA kernels (src/cuda/kernels.rs: the Lovász sort's
/// permutation, Adam in one launch) run on a GPU, or candle's ops in their
/// place (ESX_KERNELS=0: a way around them should one fail on a machine).
pub fn own_cuda_kernels() -> bool {
    std::env::var("ESX_KERNELS").map_or(true, |v| v != "0")
}
