//! `esx bench train`: the training step (forward, loss, backward, Adam) and
//! inference on given shapes, with images/s, GFLOP/s and peak memory, on
//! the CPU or a CUDA device (each phase timed to a device synchronisation).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::Figure;
use crate::config::{SynthConfig, SynthKind};
use crate::data::synth::synth_frame;
use crate::loss::{EmbedSegLoss, LossWeights};
use crate::model::{BranchedErfnet, Mode, Weights};
use crate::train::adam::Adam;

/// Convolution FLOPs of one BranchedERFNet forward pass on (n, 1, h, w), n_sigma = 2.
pub fn forward_flops(n: usize, h: usize, w: usize) -> f64 {
    let conv = |cin: usize, cout: usize, k: usize, oh: usize, ow: usize| {
        2.0 * (n * cout * oh * ow * cin * k) as f64
    };
    let (h2, w2, h4, w4, h8, w8) = (h / 2, w / 2, h / 4, w / 4, h / 8, w / 8);
    let nb = |c: usize, hh: usize, ww: usize| 4.0 * conv(c, c, 3, hh, ww);
    let mut f = conv(1, 15, 9, h2, w2) + conv(16, 48, 9, h4, w4) + 5.0 * nb(64, h4, w4);
    f += conv(64, 64, 9, h8, w8) + 8.0 * nb(128, h8, w8);
    // Two decoders: upsamplers (as transposed convs, counted on the input grid), blocks, output.
    for out in [4, 1] {
        f += conv(128, 64, 9, h8, w8)
            + 2.0 * nb(64, h4, w4)
            + conv(64, 16, 9, h4, w4)
            + 2.0 * nb(16, h2, w2);
        f += conv(16, out, 4, h2, w2);
    }
    f
}

/// Peak resident memory since the last reset, in MB (Linux).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak-RSS counter (Linux: writing 5 to clear_refs).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A batch of `n` synthetic fluorescence crops of `size` (CPU tensor,
/// labels, no marked centres).
pub fn synthetic_batch(n: usize, size: usize) -> (Tensor, Vec<u32>, Vec<u32>) {
    synthetic_batch_from(n, size, 9)
}

/// `synthetic_batch` from the synthetic dataset of `seed`.
pub fn synthetic_batch_from(n: usize, size: usize, seed: u64) -> (Tensor, Vec<u32>, Vec<u32>) {
    let spec = SynthConfig {
        kind: SynthKind::Fluo,
        sequences: 1,
        frames: n,
        size,
        seed,
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for t in 0..n {
        let (img, lab) = synth_frame(&spec, 1, t);
        let mut g = img.to_f32();
        crate::data::normalize::normalize(
            &mut g,
            crate::config::Normalization::Percentile,
            1.0,
            99.8,
        );
        images.extend(g.data);
        labels.extend(lab.data);
    }
    let x = Tensor::from_vec(images, (n, 1, size, size), &Device::Cpu).expect("a batch tensor");
    let centers = vec![0u32; labels.len()];
    (x, labels, centers)
}

pub struct StepTimes {
    pub forward: f64,
    pub loss: f64,
    pub backward: f64,
    pub optimizer: f64,
}

impl StepTimes {
    pub fn total(&self) -> f64 {
        self.forward + self.loss + self.backward + self.optimizer
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median times of `steps` training steps (after one warm-up step) on
/// `device`, and on a GPU the memory peaks over them, weights included.
pub fn time_training(
    n: usize,
    size: usize,
    steps: usize,
    device: &Device,
) -> candle_core::Result<(StepTimes, Option<GpuPeak>)> {
    reset_gpu_peak(device);
    let w = Weights::new(DType::F32, device);
    let net = BranchedErfnet::new(&w, 2, 0)?;
    w.init_pytorch(0)?;
    w.init_output(2, 1.0)?;
    let mut opt = Adam::new(w.trainable(), 5e-4, 1e-4, w.backend)?;
    let (x, labels, centers) = synthetic_batch(n, size);
    let lw = LossWeights {
        w_inst: 1.0,
        w_var: 10.0,
        w_seed: 1.0,
        foreground_weight: 10.0,
    };
    let loss = EmbedSegLoss::new(lw, 2, w.backend);
    let mut times: Vec<[f64; 4]> = Vec::new();
    let sync = || device.synchronize();
    for _ in 0..steps + 1 {
        sync()?;
        let t0 = Instant::now();
        // The batch goes up every step, as in training.
        let x = x.to_device(device)?;
        let y = net.forward(&x, Mode::Train)?;
        sync()?;
        let t1 = Instant::now();
        let terms = loss.compute(&y, &labels, &centers, false)?;
        sync()?;
        let t2 = Instant::now();
        let grads = terms.total.backward()?;
        sync()?;
        let t3 = Instant::now();
        let g: Vec<Option<Tensor>> = opt.vars().map(|v| grads.get(v).cloned()).collect();
        opt.step(&g)?;
        // As training does: the loss's values read after the step.
        terms.values()?;
        let t4 = Instant::now();
        times.push([
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            (t4 - t3).as_secs_f64(),
        ]);
    }
    times.remove(0);
    let col = |i: usize| median(times.iter().map(|t| t[i]).collect());
    Ok((
        StepTimes {
            forward: col(0),
            loss: col(1),
            backward: col(2),
            optimizer: col(3),
        },
        gpu_peak(device),
    ))
}

/// A GPU's memory peaks over a measurement (MB): what its tensors held at
/// most (the pool's used-memory high-water mark: PyTorch's
/// max_memory_allocated) and what the pool reserved at most.
#[derive(Clone, Copy, Debug)]
pub struct GpuPeak {
    pub used_mb: f64,
    pub reserved_mb: f64,
}

/// Starts a measurement of `device`'s memory peaks (CUDA devices).
pub fn reset_gpu_peak(device: &Device) {
    #[cfg(feature = "cuda")]
    crate::cuda::memory::reset_peaks(device);
    #[cfg(not(feature = "cuda"))]
    let _ = device;
}

/// `device`'s memory peaks since `reset_gpu_peak` (CUDA devices).
pub fn gpu_peak(device: &Device) -> Option<GpuPeak> {
    #[cfg(feature = "cuda")]
    return crate::cuda::memory::peaks(device).map(|(used, reserved)| GpuPeak {
        used_mb: used as f64 / 1e6,
        reserved_mb: reserved as f64 / 1e6,
    });
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        None
    }
}

/// Median time of an eval-mode forward pass on (n, 1, size, size), on the
/// network `esx predict` uses (detached weights: no autograd graph kept),
/// the image going to `device` and the maps clustering needs coming back.
pub fn time_inference(
    n: usize,
    size: usize,
    runs: usize,
    device: &Device,
) -> candle_core::Result<(f64, Option<GpuPeak>)> {
    reset_gpu_peak(device);
    let w = Weights::new(DType::F32, device);
    BranchedErfnet::new(&w, 2, 0)?;
    w.init_pytorch(0)?;
    let net = BranchedErfnet::for_inference(&w, 2)?;
    let x = Tensor::zeros((n, 1, size, size), DType::F32, &Device::Cpu)?;
    let mut times = Vec::new();
    for _ in 0..runs + 1 {
        device.synchronize()?;
        let t = Instant::now();
        let y = net.forward(&x.to_device(device)?, Mode::Eval)?;
        let maps = y.to_device(&Device::Cpu)?;
        drop(maps);
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0);
    Ok((median(times), gpu_peak(device)))
}

/// PyTorch's figures for one shape, from tools/reference/bench_torch.py.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct TorchFigures {
    pub forward: f64,
    #[serde(default)]
    pub loss: f64,
    #[serde(default)]
    pub step: f64,
    /// Prediction benchmarks: clustering time and instances found.
    #[serde(default)]
    pub cluster: f64,
    #[serde(default)]
    pub instances: f64,
    pub peak_rss_mb: f64,
    /// On a GPU: torch.cuda.max_memory_allocated (MB).
    #[serde(default)]
    pub peak_gpu_mb: f64,
    /// On a GPU: torch.cuda.max_memory_reserved (MB).
    #[serde(default)]
    pub peak_gpu_reserved_mb: f64,
}

/// Where to find PyTorch: the interpreter of the reference environment and the script.
pub struct Torch {
    pub python: std::path::PathBuf,
    pub script: std::path::PathBuf,
    /// "cpu" or "cuda:N": where PyTorch runs (as esx).
    pub device: String,
    /// Its cuDNN convolutions in TF32 or not (cudnn.allow_tf32), as esx's.
    pub precision: crate::config::Precision,
}

impl Torch {
    pub(crate) fn call(&self, args: &[String]) -> Result<TorchFigures, String> {
        let out = std::process::Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .env("ESX_BENCH_DEVICE", &self.device)
            .env("ESX_BENCH_PRECISION", self.precision.name())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "{} failed: {}",
                self.script.display(),
                err.lines().last().unwrap_or("")
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or(""))
            .map_err(|e| format!("bench_torch.py printed no figures: {e}"))
    }
}

/// Writes the batch esx times, for PyTorch to time the same one.
fn write_batch(path: &std::path::Path, n: usize, size: usize) -> candle_core::Result<()> {
    let (x, labels, centers) = synthetic_batch(n, size);
    let labels = Tensor::from_vec(labels, (n, size, size), &Device::Cpu)?;
    let centers = Tensor::from_vec(centers, (n, size, size), &Device::Cpu)?;
    candle_core::safetensors::save(
        &std::collections::HashMap::from([
            ("images".to_string(), x),
            ("labels".to_string(), labels),
            ("centers".to_string(), centers),
        ]),
        path,
    )
}

/// Where the figures come from: the device, its kernels, the CPU threads.
pub fn setup(name: &str, device: &Device) -> Figure {
    let backend = crate::backend::Backend::for_device(device);
    #[cfg(feature = "cuda")]
    let gpu = crate::cuda::describe(device);
    #[cfg(not(feature = "cuda"))]
    let gpu: Option<String> = None;
    let what = match gpu {
        Some(gpu) => format!("{name}: {gpu}; {}", backend.name()),
        None => format!(
            "{name}: {}; gemm kernels {}",
            backend.name(),
            gemm_kernels()
        ),
    };
    Figure {
        name: "esx setup".into(),
        value: rayon::current_num_threads() as f64,
        unit: "threads".into(),
        target: None,
        detail: what,
    }
}

/// The CUDA libraries this process loaded, with their paths (a CUDA build
/// after a device was used): which files the figures came from.
pub fn libraries() -> Option<Figure> {
    #[cfg(feature = "cuda")]
    {
        let found = crate::cuda::loaded_libraries();
        if !found.is_empty() {
            return Some(Figure {
                name: "esx libraries".into(),
                value: found.len() as f64,
                unit: "loaded".into(),
                target: None,
                detail: found.join(" "),
            });
        }
    }
    None
}

/// Which of gemm's kernels the run-time dispatch takes on this CPU.
pub fn gemm_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(feature = "avx512") && std::is_x86_feature_detected!("avx512f") {
            return "AVX-512 (x86-v4)";
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return "AVX2+FMA (x86-v3)";
        }
        "SSE (x86-v2 or older)"
    }
    #[cfg(not(target_arch = "x86_64"))]
    "portable"
}

/// FLOP/s in the unit that reads best.
fn rate(flops: f64, seconds: f64) -> String {
    let r = flops / seconds.max(1e-12);
    if r >= 1e12 {
        format!("{:.1} TFLOP/s", r / 1e12)
    } else {
        format!("{:.1} GFLOP/s", r / 1e9)
    }
}

/// Memory figures of one measurement: peak RSS, and on a GPU the peak of
/// the memory its tensors held and of what its pool reserved.
#[derive(Clone, Copy)]
struct Memory {
    rss_mb: f64,
    gpu: Option<GpuPeak>,
}

impl Memory {
    fn describe(self) -> String {
        match self.gpu {
            Some(g) => format!(
                "peak GPU memory {:.0} MB held by tensors, {:.0} MB reserved, peak RSS {:.0} MB",
                g.used_mb, g.reserved_mb, self.rss_mb
            ),
            None => format!("peak RSS {:.0} MB", self.rss_mb),
        }
    }

    /// Ours against PyTorch's, on the memory that matters where it ran: on
    /// a GPU the peaks of memory held by tensors (PyTorch's
    /// max_memory_allocated), else the peak RSS.
    fn ratio(self, p: &TorchFigures) -> String {
        match self.gpu {
            Some(g) => format!(
                "{:.2}× the peak GPU memory held by tensors",
                g.used_mb / p.peak_gpu_mb
            ),
            None => format!("{:.2}× the peak RSS", self.rss_mb / p.peak_rss_mb),
        }
    }
}

fn describe_torch_memory(p: &TorchFigures) -> String {
    if p.peak_gpu_mb > 0.0 {
        format!(
            "peak GPU memory {:.0} MB held by tensors, {:.0} MB reserved, peak RSS {:.0} MB",
            p.peak_gpu_mb, p.peak_gpu_reserved_mb, p.peak_rss_mb
        )
    } else {
        format!("peak RSS {:.0} MB", p.peak_rss_mb)
    }
}

/// Times every shape `rounds` times on `device`, alternating esx and
/// PyTorch round by round (a shared machine's speed drifts; alternating
/// spreads the drift over both), and reports the medians over rounds and
/// the ratio of each round. Each shape's figures go to `emit` as soon as
/// they are measured; a shape that fails is a FAILED figure and the next
/// one is measured. Returns whether every shape was measured.
pub fn run(
    train_shapes: &[(usize, usize)],
    infer_shapes: &[(usize, usize)],
    steps: usize,
    rounds: usize,
    torch: Option<&Torch>,
    device: &Device,
    emit: &mut dyn FnMut(Figure),
) -> candle_core::Result<bool> {
    let scratch = tempfile::tempdir()?;
    let rounds = rounds.max(1);
    let mut ok = true;
    for &(n, s) in train_shapes {
        let name = format!("esx train [{n},1,{s},{s}]");
        let measured = train_shape(n, s, steps, rounds, torch, device, scratch.path(), emit);
        if let Err(e) = measured {
            ok = false;
            emit(Figure::failed(name, &e));
        }
    }
    for &(n, s) in infer_shapes {
        let name = format!("esx infer [{n},1,{s},{s}]");
        if let Err(e) = infer_shape(n, s, steps, rounds, torch, device, emit) {
            ok = false;
            emit(Figure::failed(name, &e));
        }
    }
    Ok(ok)
}

/// The training step's figures at [n,1,s,s] (and PyTorch's beside).
#[allow(clippy::too_many_arguments)]
fn train_shape(
    n: usize,
    s: usize,
    steps: usize,
    rounds: usize,
    torch: Option<&Torch>,
    device: &Device,
    scratch: &std::path::Path,
    emit: &mut dyn FnMut(Figure),
) -> candle_core::Result<()> {
    let threads = rayon::current_num_threads();
    let file = scratch.join(format!("batch_{n}x{s}.safetensors"));
    if torch.is_some() {
        write_batch(&file, n, s)?;
    }
    let args = vec![
        "train".into(),
        file.display().to_string(),
        steps.to_string(),
        threads.to_string(),
    ];
    let (ours, theirs) = alternate(rounds, torch, &args, || time_training(n, s, steps, device))?;
    let ((t, gpu), rss_mb) = median_by(ours, |((t, _), _)| t.total());
    let memory = Memory { rss_mb, gpu };
    let step = t.total();
    let flops = 3.0 * forward_flops(n, s, s);
    emit(Figure {
        name: format!("esx train [{n},1,{s},{s}]"),
        value: step * 1e3,
        unit: "ms/step".into(),
        target: None,
        detail: format!(
            "{:.2} img/s, fwd {:.1} loss {:.1} bwd {:.1} adam {:.1} ms, {} without loss and Adam, effective {} (3× forward FLOPs over the whole step), loss {:.0}% of step, {}",
            n as f64 / step,
            t.forward * 1e3,
            t.loss * 1e3,
            t.backward * 1e3,
            t.optimizer * 1e3,
            rate(flops, step - t.loss - t.optimizer),
            rate(flops, step),
            100.0 * t.loss / step,
            memory.describe()
        ),
    });
    if torch.is_some() {
        let name = format!("torch train [{n},1,{s},{s}]");
        emit(compare(
            name,
            theirs,
            step,
            |p| p.step,
            |p, ratios| {
                (
                p.step * 1e3,
                "ms/step",
                format!(
                    "{:.2} img/s, fwd {:.1} loss {:.1} ms, {} without loss, effective {}, {}; esx vs torch: {:.2}× the speed{ratios}, {}",
                    n as f64 / p.step,
                    p.forward * 1e3,
                    p.loss * 1e3,
                    rate(flops, p.step - p.loss),
                    rate(flops, p.step),
                    describe_torch_memory(p),
                    p.step / step,
                    memory.ratio(p)
                ),
            )
            },
        ));
    }
    Ok(())
}

/// Inference's figures at [n,1,s,s] (and PyTorch's beside).
fn infer_shape(
    n: usize,
    s: usize,
    steps: usize,
    rounds: usize,
    torch: Option<&Torch>,
    device: &Device,
    emit: &mut dyn FnMut(Figure),
) -> candle_core::Result<()> {
    let args = vec![
        "infer".into(),
        n.to_string(),
        s.to_string(),
        steps.to_string(),
        rayon::current_num_threads().to_string(),
    ];
    let (ours, theirs) = alternate(rounds, torch, &args, || time_inference(n, s, steps, device))?;
    let ((t, gpu), rss_mb) = median_by(ours, |((t, _), _)| *t);
    let memory = Memory { rss_mb, gpu };
    emit(Figure {
        name: format!("esx infer [{n},1,{s},{s}]"),
        value: t * 1e3,
        unit: "ms".into(),
        target: None,
        detail: format!(
            "{:.2} img/s, {}, {}",
            n as f64 / t,
            rate(forward_flops(n, s, s), t),
            memory.describe()
        ),
    });
    if torch.is_some() {
        let name = format!("torch infer [{n},1,{s},{s}]");
        emit(compare(
            name,
            theirs,
            t,
            |p| p.forward,
            |p, ratios| {
                (
                    p.forward * 1e3,
                    "ms",
                    format!(
                        "{:.2} img/s, {}, {}; esx vs torch: {:.2}× the speed{ratios}, {}",
                        n as f64 / p.forward,
                        rate(forward_flops(n, s, s), p.forward),
                        describe_torch_memory(p),
                        p.forward / t,
                        memory.ratio(p)
                    ),
                )
            },
        ));
    }
    Ok(())
}

/// `rounds` rounds of esx's measurement (with its peak RSS) and, when
/// given, PyTorch's on `args`, one after the other.
#[allow(clippy::type_complexity)]
fn alternate<R>(
    rounds: usize,
    torch: Option<&Torch>,
    args: &[String],
    mut measure: impl FnMut() -> candle_core::Result<R>,
) -> candle_core::Result<(Vec<(R, f64)>, Vec<Result<TorchFigures, String>>)> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..rounds {
        reset_peak_rss();
        let m = measure()?;
        ours.push((m, peak_rss_mb()));
        if let Some(torch) = torch {
            theirs.push(torch.call(args));
        }
    }
    Ok((ours, theirs))
}

/// The median element of `v` by `key`.
fn median_by<T>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mid = v.len() / 2;
    v.swap_remove(mid)
}

/// PyTorch's median round as a figure; `ratios` (passed to `describe`) lists
/// esx's speed against each round's when there were several.
fn compare(
    name: String,
    rounds: Vec<Result<TorchFigures, String>>,
    ours: f64,
    time: impl Fn(&TorchFigures) -> f64,
    describe: impl Fn(&TorchFigures, String) -> (f64, &'static str, String),
) -> Figure {
    let mut ok = Vec::new();
    for r in rounds {
        match r {
            Ok(p) => ok.push(p),
            Err(why) => {
                return Figure {
                    name,
                    value: f64::NAN,
                    unit: String::new(),
                    target: None,
                    detail: why,
                }
            }
        }
    }
    let ratios = if ok.len() > 1 {
        let each: Vec<String> = ok
            .iter()
            .map(|p| format!("{:.2}", time(p) / ours))
            .collect();
        format!(" (median of rounds {})", each.join(", "))
    } else {
        String::new()
    };
    let p = median_by(ok, &time);
    let (value, unit, detail) = describe(&p, ratios);
    Figure {
        name,
        value,
        unit: unit.into(),
        target: None,
        detail,
    }
}

pub(crate) fn torch_figure(
    torch: &Torch,
    args: &[String],
    name: String,
    describe: impl Fn(&TorchFigures) -> (f64, &'static str, String),
) -> Figure {
    match torch.call(args) {
        Ok(p) => {
            let (value, unit, detail) = describe(&p);
            Figure {
                name,
                value,
                unit: unit.into(),
                target: None,
                detail,
            }
        }
        Err(why) => Figure {
            name,
            value: f64::NAN,
            unit: String::new(),
            target: None,
            detail: why,
        },
    }
}
