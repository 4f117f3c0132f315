//! esx's own CUDA kernels, compiled by NVRTC the first time one is needed
//! (NVRTC is loaded at run time like the other libraries):
//!
//! - rows permuted and put back (the Lovász hinge's sort and its
//!   gradient): one thread an element; candle's gather would do the first,
//!   but its gradient is a scatter_add with one thread per row, all K
//!   instance rows in one block on one SM, serial over the pixels;
//! - Adam over every parameter in one launch (a multi-tensor step as
//!   PyTorch's fused Adam): the weights updated in place through a table
//!   of their addresses, the moments in two flat buffers, a parameter
//!   without a gradient left as it is.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDevice, CudaStorage, WrapErr};
use candle_core::{DType, Layout, Result, Storage, Tensor, Var};
use cudarc::driver::{CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};

const SOURCE: &str = r#"
typedef unsigned long long u64;

#define ROWS(T, PERMUTE, UNPERMUTE)                                              \
extern "C" __global__ void PERMUTE(const T* v, const unsigned int* order,        \
                                   T* out, u64 cols, u64 n) {                    \
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;              \
         i += (u64)gridDim.x * blockDim.x) {                                     \
        out[i] = v[(i / cols) * cols + order[i]];                                \
    }                                                                            \
}                                                                                \
extern "C" __global__ void UNPERMUTE(const T* g, const unsigned int* order,      \
                                     T* out, u64 cols, u64 n) {                  \
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;              \
         i += (u64)gridDim.x * blockDim.x) {                                     \
        out[(i / cols) * cols + order[i]] = g[i];                                \
    }                                                                            \
}
ROWS(float, permute_rows_f32, unpermute_rows_f32)
ROWS(double, permute_rows_f64, unpermute_rows_f64)

#define ADAM(T, NAME, SQRT)                                                      \
extern "C" __global__ void NAME(T* const* w, const T* const* g, T* m, T* v,     \
                                const u64* offsets, unsigned int tensors,        \
                                T lr_bc1, T inv_sqrt_bc2, T b1, T c1, T b2,      \
                                T c2, T eps, T wd) {                             \
    u64 total = offsets[tensors];                                                \
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < total;          \
         i += (u64)gridDim.x * blockDim.x) {                                     \
        unsigned int lo = 0, hi = tensors;                                       \
        while (hi - lo > 1) {                                                    \
            unsigned int mid = (lo + hi) / 2;                                    \
            if (offsets[mid] <= i) lo = mid; else hi = mid;                      \
        }                                                                        \
        const T* gt = g[lo];                                                     \
        if (gt == 0) continue;                                                   \
        u64 j = i - offsets[lo];                                                 \
        T wj = w[lo][j];                                                         \
        T gj = gt[j] + wj * wd;                                                  \
        T mi = m[i] * b1 + gj * c1;                                              \
        T vi = v[i] * b2 + (gj * gj) * c2;                                       \
        m[i] = mi;                                                               \
        v[i] = vi;                                                               \
        w[lo][j] = wj - (mi * lr_bc1) / (SQRT(vi) * inv_sqrt_bc2 + eps);        \
    }                                                                            \
}
ADAM(float, adam_f32, sqrtf)
ADAM(double, adam_f64, sqrt)
"#;

const MODULE: &str = "esx_kernels";

/// The kernels' PTX, compiled once per process.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        cudarc::nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| format!("NVRTC could not compile esx's kernels: {e:?}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

fn launch_config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 8192) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The address of a CUDA storage's element `start`.
fn address(s: &CudaStorage, start: usize) -> Result<u64> {
    let stream = s.device.cuda_stream();
    let (base, size) = match s.dtype() {
        DType::F32 => (s.as_cuda_slice::<f32>()?.device_ptr(&stream).0, 4),
        DType::F64 => (s.as_cuda_slice::<f64>()?.device_ptr(&stream).0, 8),
        DType::U32 => (s.as_cuda_slice::<u32>()?.device_ptr(&stream).0, 4),
        other => candle_core::bail!("esx's kernels take no {other:?} tensors"),
    };
    Ok(base + (start * size) as u64)
}

/// The address of the first element of a contiguous layout.
fn first(s: &CudaStorage, l: &Layout) -> Result<u64> {
    match l.contiguous_offsets() {
        Some((start, _)) => address(s, start),
        None => candle_core::bail!("esx's kernels take contiguous tensors"),
    }
}

/// Rows of `values` (rows, cols) in the order of `order` (rows, cols) u32:
/// out[r, j] = values[r, order[r, j]], or with `back` the inverse, where
/// `order` is a permutation of each row: out[r, order[r, j]] = values[r, j].
pub fn permute_rows(
    values: (&CudaStorage, &Layout),
    order: (&CudaStorage, &Layout),
    back: bool,
) -> Result<CudaStorage> {
    let device = values.0.device.clone();
    let (rows, cols) = values.1.shape().dims2()?;
    let n = rows * cols;
    let name = match (values.0.dtype(), back) {
        (DType::F32, false) => "permute_rows_f32",
        (DType::F32, true) => "unpermute_rows_f32",
        (DType::F64, false) => "permute_rows_f64",
        (DType::F64, true) => "unpermute_rows_f64",
        (other, _) => candle_core::bail!("rows of {other:?} cannot be permuted here"),
    };
    let (v, o) = (first(values.0, values.1)?, first(order.0, order.1)?);
    let func = device.get_or_load_custom_func(name, MODULE, ptx()?)?;
    let (cols, count) = (cols as u64, n as u64);
    macro_rules! launch {
        ($t:ty) => {{
            // SAFETY: every element is written (a permutation of each row).
            let out = unsafe { device.alloc::<$t>(n)? };
            let mut b = func.builder();
            b.arg(&v);
            b.arg(&o);
            b.arg(&out);
            b.arg(&cols);
            b.arg(&count);
            // SAFETY: v and o hold n elements, out n; the kernel indexes
            // within them.
            unsafe { b.launch(launch_config(n)) }.w()?;
            CudaStorage::wrap_cuda_slice(out, device.clone())
        }};
    }
    Ok(match values.0.dtype() {
        DType::F32 => launch!(f32),
        _ => launch!(f64),
    })
}

/// Adam's scalars for one step.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr_bc1: f64,
    pub inv_sqrt_bc2: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// One launch updates every parameter: the weights through a table of
/// their addresses (made once: a Var's storage never moves), the
/// gradients through a table made each step (null: no gradient).
pub struct AdamKernel {
    device: CudaDevice,
    dtype: DType,
    weights: CudaSlice<u64>,
    offsets: CudaSlice<u64>,
    sizes: Vec<usize>,
}

fn cuda_address(t: &Tensor) -> Result<(u64, CudaDevice)> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(s) = &*storage else {
        candle_core::bail!("a CUDA tensor was expected");
    };
    Ok((first(s, layout)?, s.device.clone()))
}

impl AdamKernel {
    /// The kernel for `params`, all on one CUDA device in one float dtype.
    pub fn new(params: &[(String, Var)]) -> Result<AdamKernel> {
        let Some((_, p0)) = params.first() else {
            candle_core::bail!("no parameters");
        };
        let dtype = p0.dtype();
        if !matches!(dtype, DType::F32 | DType::F64) {
            candle_core::bail!("Adam's kernel takes f32 or f64 parameters, not {dtype:?}");
        }
        let mut addresses = Vec::with_capacity(params.len());
        let mut offsets = vec![0u64];
        let mut sizes = Vec::with_capacity(params.len());
        let mut device = None;
        for (name, p) in params {
            if p.dtype() != dtype {
                candle_core::bail!("parameter {name} is {:?}, the others {dtype:?}", p.dtype());
            }
            let (a, d) = cuda_address(p.as_tensor())?;
            addresses.push(a);
            sizes.push(p.elem_count());
            offsets.push(offsets.last().copied().unwrap_or(0) + p.elem_count() as u64);
            device = Some(d);
        }
        let device = device.expect("at least one parameter");
        ptx()?;
        let stream = device.cuda_stream();
        Ok(AdamKernel {
            weights: stream.clone_htod(&addresses).w()?,
            offsets: stream.clone_htod(&offsets).w()?,
            dtype,
            sizes,
            device,
        })
    }

    /// One step: `m` and `v` the flat moments (every parameter end to
    /// end), `grads` one per parameter.
    pub fn step(
        &self,
        grads: &[Option<Tensor>],
        m: &Tensor,
        v: &Tensor,
        s: AdamStep,
    ) -> Result<()> {
        let mut table = Vec::with_capacity(grads.len());
        for (g, &size) in grads.iter().zip(&self.sizes) {
            match g {
                Some(g) if g.elem_count() == size && g.dtype() == self.dtype => {
                    table.push(cuda_address(g)?.0)
                }
                Some(g) => candle_core::bail!(
                    "a gradient of {:?} {:?} for a parameter of {size} {:?}",
                    g.dims(),
                    g.dtype(),
                    self.dtype
                ),
                None => table.push(0),
            }
        }
        let stream = self.device.cuda_stream();
        let table = stream.clone_htod(&table).w()?;
        let (pm, pv) = (cuda_address(m)?.0, cuda_address(v)?.0);
        let name = if self.dtype == DType::F32 {
            "adam_f32"
        } else {
            "adam_f64"
        };
        let func = self.device.get_or_load_custom_func(name, MODULE, ptx()?)?;
        let total = self.sizes.iter().sum::<usize>();
        let tensors = self.sizes.len() as u32;
        let mut b = func.builder();
        b.arg(&self.weights);
        b.arg(&table);
        b.arg(&pm);
        b.arg(&pv);
        b.arg(&self.offsets);
        b.arg(&tensors);
        let scalars = [
            s.lr_bc1,
            s.inv_sqrt_bc2,
            s.beta1,
            1.0 - s.beta1,
            s.beta2,
            1.0 - s.beta2,
            s.eps,
            s.weight_decay,
        ];
        let as_f32 = scalars.map(|x| x as f32);
        if self.dtype == DType::F32 {
            for x in &as_f32 {
                b.arg(x);
            }
        } else {
            for x in &scalars {
                b.arg(x);
            }
        }
        // SAFETY: the tables hold the addresses of live tensors of the
        // sizes in `offsets` (weights owned by the optimiser's Vars,
        // gradients by the caller until the stream has run this), m and v
        // hold `total` elements.
        unsafe { b.launch(launch_config(total)) }.w()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// NVRTC compiles the kernels (no GPU needed: NVRTC only compiles).
    /// Run where libnvrtc is on the library path, e.g. NVIDIA's
    /// `nvidia-cuda-nvrtc` wheel; elsewhere there is nothing to check.
    #[test]
    fn the_kernels_compile() {
        // SAFETY: only tries to dlopen the library.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            eprintln!("no libnvrtc here: the kernels' compilation is not checked");
            return;
        }
        let ptx = super::ptx().unwrap();
        for name in [
            "permute_rows_f32",
            "unpermute_rows_f32",
            "permute_rows_f64",
            "unpermute_rows_f64",
            "adam_f32",
            "adam_f64",
        ] {
            assert!(ptx.contains(&format!(".entry {name}(")), "{name} missing");
        }
    }
}
