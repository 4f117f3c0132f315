//! Convolutions by cuDNN, loaded at run time like the other CUDA libraries
//! (cuDNN 9: PyTorch's `nvidia-cudnn-cu13` wheel carries it). Each device
//! records when it is opened whether its convolutions run cuDNN, and in
//! which precision; where cuDNN is missing (or ESX_CUDNN=0) they run
//! candle's kernels and the device's description says so.
//!
//! The three passes (src/conv_pass.rs) each pick their algorithm
//! the first time a shape is seen by timing every candidate
//! (cudnnFind…: PyTorch's `cudnn.benchmark = True`, which EmbedSeg sets),
//! and keep it for the process. "fp32" restricts cuDNN to FMA kernels
//! (exact f32 products); "tf32" lets it use tensor cores (PyTorch's
//! default for convolutions). f64 has no choice.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDevice, CudaStorage, DeviceId};
use candle_core::{DType, Layout, Result};
use cudarc::cudnn::result as cr;
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

use crate::conv_pass::{Pass, Problem};

/// How a device's convolutions run cuDNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Engine {
    /// f32 convolutions on tensor cores (TF32 inputs), else FMA only.
    pub tf32: bool,
    /// cudnnGetVersion: 91002 is 9.10.2.
    pub version: usize,
}

impl Engine {
    fn describe(self) -> String {
        let v = self.version;
        format!(
            "cuDNN {}.{}.{} ({})",
            v / 10000,
            (v % 10000) / 100,
            v % 100,
            self.precision()
        )
    }
}

impl Engine {
    /// "tf32" or "fp32", as `train.precision` says it.
    pub fn precision(self) -> &'static str {
        if self.tf32 {
            "tf32"
        } else {
            "fp32"
        }
    }
}

/// What each opened device's convolutions run: cuDNN, or why not.
static ENGINES: Mutex<Vec<(DeviceId, std::result::Result<Engine, String>)>> =
    Mutex::new(Vec::new());

fn engines() -> std::sync::MutexGuard<'static, Vec<(DeviceId, std::result::Result<Engine, String>)>>
{
    ENGINES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Decides once, as `device` is opened, whether its convolutions run
/// cuDNN: the library must load and give a handle.
pub fn register(device: &CudaDevice, tf32: bool) {
    let engine = if std::env::var("ESX_CUDNN").is_ok_and(|v| v == "0") {
        Err("ESX_CUDNN=0".to_string())
    } else if !unsafe { sys::is_culib_present() } {
        Err("no libcudnn on the library path".to_string())
    } else {
        handle(device)
            .map(|_| Engine {
                tf32,
                version: cr::get_version(),
            })
            .map_err(|e| format!("cuDNN would not start: {e}"))
    };
    engines().push((device.id(), engine));
}

/// cuDNN for `device`'s convolutions, if it runs them.
pub fn engine(device: &CudaDevice) -> Option<Engine> {
    engines()
        .iter()
        .rev()
        .find(|(id, _)| *id == device.id())
        .and_then(|(_, e)| e.as_ref().ok().copied())
}

/// How `device`'s convolutions run, in a few words.
pub fn describe(device: &CudaDevice) -> String {
    match engines().iter().rev().find(|(id, _)| *id == device.id()) {
        Some((_, Ok(engine))) => engine.describe(),
        Some((_, Err(why))) => format!("candle's kernels ({why})"),
        None => "candle's kernels".into(),
    }
}

fn err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuDNN: {e}"))
}

/// A cuDNN algorithm of one of the three passes.
#[derive(Clone, Copy, Debug)]
enum Algo {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    Data(sys::cudnnConvolutionBwdDataAlgo_t),
    Filter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

/// The algorithm a pass of a problem runs, and what it needs.
#[derive(Clone, Copy, Debug)]
struct Choice {
    algo: Algo,
    math: sys::cudnnMathType_t,
    workspace: usize,
}

/// A cuDNN handle on one thread (cuDNN handles are not to be shared
/// between threads), with the algorithms chosen so far.
struct Handle {
    raw: sys::cudnnHandle_t,
    /// By pass, problem, f64 or not, TF32 or not.
    choices: RefCell<HashMap<(Pass, Problem, bool, bool), Choice>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreate, destroyed once.
        let _ = unsafe { cr::destroy_handle(self.raw) };
    }
}

thread_local! {
    static HANDLES: RefCell<HashMap<DeviceId, Rc<Handle>>> = RefCell::new(HashMap::new());
}

/// This thread's handle for `device`, on its stream.
fn handle(device: &CudaDevice) -> std::result::Result<Rc<Handle>, String> {
    HANDLES.with(|handles| {
        if let Some(h) = handles.borrow().get(&device.id()) {
            return Ok(h.clone());
        }
        let stream = device.cuda_stream();
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| format!("{e:?}"))?;
        let raw = cr::create_handle().map_err(|e| e.to_string())?;
        let h = Rc::new(Handle {
            raw,
            choices: RefCell::new(HashMap::new()),
        });
        // SAFETY: a live handle and the device's own stream.
        unsafe { cr::set_stream(raw, stream.cu_stream() as *mut _) }.map_err(|e| e.to_string())?;
        handles.borrow_mut().insert(device.id(), h.clone());
        Ok(h)
    })
}

/// The descriptors of one problem, destroyed with it.
struct Descriptors {
    x: sys::cudnnTensorDescriptor_t,
    y: sys::cudnnTensorDescriptor_t,
    w: sys::cudnnFilterDescriptor_t,
    conv: sys::cudnnConvolutionDescriptor_t,
}

impl Drop for Descriptors {
    fn drop(&mut self) {
        // SAFETY: each was created once below and is destroyed once.
        unsafe {
            let _ = cr::destroy_tensor_descriptor(self.x);
            let _ = cr::destroy_tensor_descriptor(self.y);
            let _ = cr::destroy_filter_descriptor(self.w);
            let _ = cr::destroy_convolution_descriptor(self.conv);
        }
    }
}

fn int4(d: [usize; 4]) -> Result<[i32; 4]> {
    let mut out = [0i32; 4];
    for (o, v) in out.iter_mut().zip(d) {
        *o = i32::try_from(v).map_err(|_| err(format!("dimension {v} too large")))?;
    }
    Ok(out)
}

impl Descriptors {
    fn new(p: &Problem, data: sys::cudnnDataType_t) -> Result<Descriptors> {
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let d = Descriptors {
            x: cr::create_tensor_descriptor().map_err(err)?,
            y: cr::create_tensor_descriptor().map_err(err)?,
            w: cr::create_filter_descriptor().map_err(err)?,
            conv: cr::create_convolution_descriptor().map_err(err)?,
        };
        let [ph, pw] = p.pad.map(|v| v as i32);
        let [sh, sw] = p.stride.map(|v| v as i32);
        let [dh, dw] = p.dilation.map(|v| v as i32);
        // SAFETY: descriptors just created; dims checked to fit an int.
        unsafe {
            cr::set_tensor4d_descriptor(d.x, nchw, data, int4(p.x)?).map_err(err)?;
            cr::set_tensor4d_descriptor(d.y, nchw, data, int4(p.y)?).map_err(err)?;
            cr::set_filter4d_descriptor(d.w, data, nchw, int4(p.w)?).map_err(err)?;
            cr::set_convolution2d_descriptor(
                d.conv,
                ph,
                pw,
                sh,
                sw,
                dh,
                dw,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                data,
            )
            .map_err(err)?;
        }
        Ok(d)
    }
}

/// The math type cuDNN may use: f32 in fp32 only FMA kernels; in tf32
/// anything (tensor cores on TF32 inputs), as PyTorch sets it.
fn math(is_f64: bool, tf32: bool) -> sys::cudnnMathType_t {
    match (is_f64, tf32) {
        (false, false) => sys::cudnnMathType_t::CUDNN_FMA_MATH,
        _ => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
    }
}

/// At most this much workspace for one convolution (PyTorch, too, passes
/// over algorithms whose workspace it cannot get).
const MAX_WORKSPACE: usize = 1 << 30;

/// One candidate as cudnnFind reports it.
struct Timed {
    algo: Algo,
    ok: bool,
    time: f32,
    memory: usize,
    math: sys::cudnnMathType_t,
}

/// Times every algorithm for the pass and keeps the fastest that works,
/// needs at most MAX_WORKSPACE and keeps to the precision.
fn find(h: &Handle, pass: Pass, d: &Descriptors, allowed: sys::cudnnMathType_t) -> Result<Choice> {
    const N: usize = 16;
    let mut count = 0i32;
    // One arm a pass: its perf struct and cudnnFind call differ, the rest
    // is the same.
    macro_rules! timed {
        ($perf:ty, $variant:ident, $find:ident, $($desc:expr),+) => {{
            // SAFETY: zeroed perf structs are valid (every field's 0 is a
            // variant); cuDNN fills `count` of them.
            let mut perf: [$perf; N] = unsafe { std::mem::zeroed() };
            unsafe { sys::$find(h.raw, $($desc),+, N as i32, &mut count, perf.as_mut_ptr()) }
                .result()
                .map_err(err)?;
            perf[..count.clamp(0, N as i32) as usize]
                .iter()
                .map(|p| Timed {
                    algo: Algo::$variant(p.algo),
                    ok: p.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS,
                    time: p.time,
                    memory: p.memory,
                    math: p.mathType,
                })
                .collect::<Vec<Timed>>()
        }};
    }
    let timed = match pass {
        Pass::Forward => timed!(
            sys::cudnnConvolutionFwdAlgoPerf_t,
            Forward,
            cudnnFindConvolutionForwardAlgorithm,
            d.x,
            d.w,
            d.conv,
            d.y
        ),
        Pass::BackwardData => timed!(
            sys::cudnnConvolutionBwdDataAlgoPerf_t,
            Data,
            cudnnFindConvolutionBackwardDataAlgorithm,
            d.w,
            d.y,
            d.conv,
            d.x
        ),
        Pass::BackwardFilter => timed!(
            sys::cudnnConvolutionBwdFilterAlgoPerf_t,
            Filter,
            cudnnFindConvolutionBackwardFilterAlgorithm,
            d.x,
            d.y,
            d.conv,
            d.w
        ),
    };
    // In fp32, no tensor-core candidate (whatever math type cuDNN reports
    // for the others, they run under FMA_MATH below).
    let fma_only = allowed == sys::cudnnMathType_t::CUDNN_FMA_MATH;
    let tensor_ops = |m: sys::cudnnMathType_t| {
        matches!(
            m,
            sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
                | sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
        )
    };
    let best = timed
        .iter()
        .filter(|t| t.ok && t.memory <= MAX_WORKSPACE)
        .filter(|t| !(fma_only && tensor_ops(t.math)))
        .min_by(|a, b| a.time.total_cmp(&b.time))
        .ok_or_else(|| {
            err(format!(
                "no {pass:?} algorithm for this convolution ({} tried)",
                timed.len()
            ))
        })?;
    let math = if fma_only { allowed } else { best.math };
    // The workspace the launch asks for, which may exceed what cudnnFind
    // reported.
    // SAFETY: live handle and descriptors; the algorithm is of this pass.
    let asked = unsafe {
        cr::set_convolution_math_type(d.conv, math).map_err(err)?;
        match best.algo {
            Algo::Forward(a) => {
                cr::get_convolution_forward_workspace_size(h.raw, d.x, d.w, d.conv, d.y, a)
            }
            Algo::Data(a) => {
                cr::get_convolution_backward_data_workspace_size(h.raw, d.w, d.y, d.conv, d.x, a)
            }
            Algo::Filter(a) => {
                cr::get_convolution_backward_filter_workspace_size(h.raw, d.x, d.y, d.conv, d.w, a)
            }
        }
    }
    .map_err(err)?;
    Ok(Choice {
        algo: best.algo,
        math,
        workspace: best.memory.max(asked),
    })
}

/// The device pointer of a contiguous tensor's first element.
fn start<T: cudarc::driver::DeviceRepr>(
    s: &CudaSlice<T>,
    l: &Layout,
    stream: &cudarc::driver::CudaStream,
) -> Result<u64> {
    let Some((from, to)) = l.contiguous_offsets() else {
        return Err(err("convolution inputs must be contiguous"));
    };
    let view = s.slice(from..to);
    let (ptr, _record) = view.device_ptr(stream);
    Ok(ptr)
}

/// Runs `pass` of `p` on two contiguous f32 or f64 tensors (the pass's
/// inputs in order, see `Problem::inputs`): a new tensor of the pass's
/// output dims.
pub fn run(
    pass: Pass,
    p: &Problem,
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let device = s1.device.clone();
    let engine = engine(&device).ok_or_else(|| err("not in use on this device"))?;
    match s1.dtype() {
        DType::F32 => launch::<f32>(pass, p, engine, &device, (s1, l1), (s2, l2)),
        DType::F64 => launch::<f64>(pass, p, engine, &device, (s1, l1), (s2, l2)),
        other => Err(err(format!("convolutions of {other:?} are not supported"))),
    }
}

/// An element type cuDNN convolves, with its scaling factors.
trait Element: cudarc::driver::DeviceRepr + candle_core::cuda_backend::CudaDType + Copy {
    const DATA: sys::cudnnDataType_t;
    const ONE: Self;
    const ZERO: Self;
}

impl Element for f32 {
    const DATA: sys::cudnnDataType_t = sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
    const ONE: f32 = 1.0;
    const ZERO: f32 = 0.0;
}

impl Element for f64 {
    const DATA: sys::cudnnDataType_t = sys::cudnnDataType_t::CUDNN_DATA_DOUBLE;
    const ONE: f64 = 1.0;
    const ZERO: f64 = 0.0;
}

fn launch<T: Element>(
    pass: Pass,
    p: &Problem,
    engine: Engine,
    device: &CudaDevice,
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let h = handle(device).map_err(err)?;
    let d = Descriptors::new(p, T::DATA)?;
    let is_f64 = T::DATA == sys::cudnnDataType_t::CUDNN_DATA_DOUBLE;
    let allowed = math(is_f64, engine.tf32);
    // SAFETY: a live descriptor.
    unsafe { cr::set_convolution_math_type(d.conv, allowed) }.map_err(err)?;
    let key = (pass, *p, is_f64, engine.tf32);
    let cached = h.choices.borrow().get(&key).copied();
    let choice = match cached {
        Some(c) => c,
        None => {
            let c = find(&h, pass, &d, allowed)?;
            h.choices.borrow_mut().insert(key, c);
            c
        }
    };
    // SAFETY: a live descriptor. fp32: FMA only; tf32: the math type
    // cudnnFind timed the algorithm with (as PyTorch sets it).
    unsafe { cr::set_convolution_math_type(d.conv, choice.math) }.map_err(err)?;

    let stream = device.cuda_stream();
    let a = T::as_cuda_slice(s1)?;
    let b = T::as_cuda_slice(s2)?;
    let (pa, pb) = (start(a, l1, &stream)?, start(b, l2, &stream)?);
    let n: usize = p.output(pass).iter().product();
    // SAFETY: written whole by the convolution (beta = 0).
    let mut out = unsafe { device.alloc::<T>(n)? };
    let mut workspace = unsafe { device.alloc::<u8>(choice.workspace.max(1))? };
    let (alpha, beta) = (T::ONE, T::ZERO);
    let alpha = &alpha as *const T as *const c_void;
    let beta = &beta as *const T as *const c_void;
    {
        let (po, _o) = out.device_ptr_mut(&stream);
        let (pw, _w) = workspace.device_ptr_mut(&stream);
        let (pa, pb) = (pa as *const c_void, pb as *const c_void);
        let (po, pw) = (po as *mut c_void, pw as *mut c_void);
        let size = choice.workspace;
        // SAFETY: the descriptors describe the buffers: inputs checked
        // against the problem by the op, the output allocated for it; the
        // algorithm is one cudnnFind ran for these descriptors.
        unsafe {
            match choice.algo {
                Algo::Forward(algo) => cr::convolution_forward(
                    h.raw, alpha, d.x, pa, d.w, pb, d.conv, algo, pw, size, beta, d.y, po,
                ),
                Algo::Data(algo) => cr::convolution_backward_data(
                    h.raw, alpha, d.w, pb, d.y, pa, d.conv, algo, pw, size, beta, d.x, po,
                ),
                Algo::Filter(algo) => cr::convolution_backward_filter(
                    h.raw, alpha, d.x, pa, d.y, pb, d.conv, algo, pw, size, beta, d.w, po,
                ),
            }
        }
        .map_err(err)?;
    }
    drop(workspace);
    Ok(T::wrap_cuda_slice(out, device.clone()))
}
