//! `esx bench …`: print throughput figures.

use std::path::PathBuf;

use super::print_json;

/// Measure throughput and print figures (benchmarks, not tests)
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub which: Which,
    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

/// The PyTorch side of `train` and `predict`.
#[derive(clap::Args)]
pub struct TorchArgs {
    /// Also time EmbedSeg 0.2.5 in PyTorch with this Python (tools/reference/setup.sh)
    #[arg(long, value_name = "PYTHON")]
    torch: Option<std::path::PathBuf>,
    /// The PyTorch timing script
    #[arg(
        long,
        value_name = "FILE",
        default_value = "tools/reference/bench_torch.py"
    )]
    torch_script: std::path::PathBuf,
}

impl TorchArgs {
    fn into_torch(
        self,
        device: &str,
        precision: esx::config::Precision,
    ) -> Option<esx::bench::train::Torch> {
        let script = self.torch_script;
        self.torch.map(|python| esx::bench::train::Torch {
            python,
            script,
            device: device.to_string(),
            precision,
        })
    }
}

#[derive(clap::Subcommand)]
pub enum Which {
    /// Run store: metric ingest, ls over many runs, config end to end
    Store {
        /// Scalars to ingest
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Runs to create and list
        #[arg(long = "count", default_value_t = 1000)]
        count: usize,
    },
    /// Training step and inference speed of BranchedERFNet (f32), on the CPU or
    /// a GPU; each shape's figures as soon as measured (--json: one object a line)
    Train {
        /// Where to run: cpu or cuda:N (PyTorch runs there too)
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Training shapes as BATCHxSIZE
        #[arg(long, value_delimiter = ',', default_value = "2x256,8x128")]
        train: Vec<String>,
        /// Inference shapes as BATCHxSIZE
        #[arg(long, value_delimiter = ',', default_value = "1x512,1x2048")]
        infer: Vec<String>,
        /// Timed repetitions (median reported)
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Rounds per shape, esx and PyTorch alternating (medians reported)
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Convolutions on a GPU in tf32 (tensor cores, PyTorch's default) or
        /// fp32; PyTorch is told the same
        #[arg(long, value_enum, default_value_t = esx::config::Precision::Tf32)]
        precision: esx::config::Precision,
        #[command(flatten)]
        torch: TorchArgs,
    },
    /// A device against the CPU on the same weights and batch: outputs, loss
    /// terms, gradients, one Adam step, each figure as soon as measured
    /// (--json: one object a line; exit status 1 if any is off)
    Parity {
        /// The device to check against the fused CPU ops (cpu: candle's own ops)
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Images in the batch
        #[arg(long, default_value_t = 2)]
        batch: usize,
        /// Image size (square, a multiple of 8)
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Precisions to check
        #[arg(long, value_delimiter = ',', default_value = "f64,f32")]
        dtype: Vec<String>,
        /// Also train this many steps on both sides from the same weights,
        /// batches and dropout masks, the loss terms side by side
        #[arg(long, default_value_t = 0)]
        steps: usize,
        /// The learning rate of those steps (the quickstart's)
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Convolutions on a GPU in fp32 (exact: the bounds assume it) or tf32
        #[arg(long, value_enum, default_value_t = esx::config::Precision::Fp32)]
        precision: esx::config::Precision,
    },
    /// Prediction: clustering 1024² with ~200 cells, predict + cluster end to end
    Predict {
        /// Image sizes (square) for predict + cluster
        #[arg(long, value_delimiter = ',', default_value = "512,2048")]
        sizes: Vec<usize>,
        /// Timed repetitions (median reported)
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// A trained checkpoint (an untrained network finds no seeds to cluster)
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
        #[command(flatten)]
        torch: TorchArgs,
    },
    /// Sweeps: a sweep of short runs with the local launcher, wall time against run time
    Sweep {
        /// Runs in the sweep
        #[arg(long, default_value_t = 16)]
        runs: usize,
        /// Runs at once
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Training steps per run
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Instead: an adaptive search against the full grid on a task with a
        /// known best region (compute to within 2 % of the grid's best)
        #[arg(long, value_enum)]
        method: Option<esx::config::SearchMethod>,
        /// Pruner of the search (with --method)
        #[arg(long, value_enum, default_value_t = esx::config::PruneMethod::Asha, requires = "method")]
        prune: esx::config::PruneMethod,
        /// Trials per search (with --method)
        #[arg(long, default_value_t = 24, requires = "method")]
        trials: usize,
        /// Search seeds (with --method)
        #[arg(long, default_value_t = 3, requires = "method")]
        seeds: usize,
        /// The pruner's grace period (with --method)
        #[arg(long, default_value_t = 2, requires = "method")]
        min_epochs: u32,
    },
    /// Reports: `esx report` over many long runs (time, size)
    Report {
        /// Runs to report on
        #[arg(long, default_value_t = 100)]
        runs: usize,
        /// Metric rows per run
        #[arg(long, default_value_t = 20_000)]
        points: usize,
        /// Keep the runs and the report in DIR
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// Data: instance centres (exact medoid, approx), one large 2D and one large 3D medoid, batch throughput
    Data {
        /// Synthetic frames to compute centres for
        #[arg(long, default_value_t = 100)]
        frames: usize,
        #[arg(long, default_value_t = 512)]
        frame_size: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 256)]
        crop: usize,
        /// Batches to stream
        #[arg(long, default_value_t = 50)]
        batches: usize,
    },
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let figures = match args.which {
        Which::Store { rows, count } => esx::bench::store::run(&esx::bench::store::StoreBench {
            rows,
            runs: count,
            exe: std::env::current_exe()?,
        })?,
        Which::Train {
            device,
            train,
            infer,
            steps,
            rounds,
            precision,
            torch,
        } => {
            return train_bench(
                args.json, &device, &train, &infer, steps, rounds, precision, torch,
            );
        }
        Which::Parity {
            device,
            batch,
            size,
            dtype,
            steps,
            lr,
            precision,
        } => {
            return parity_bench(
                args.json, &device, batch, size, &dtype, steps, lr, precision,
            );
        }
        Which::Predict {
            sizes,
            runs,
            checkpoint,
            torch,
        } => {
            let torch = torch.into_torch("cpu", esx::config::Precision::Fp32);
            let opts = esx::bench::predict::PredictBench {
                sizes: &sizes,
                runs,
                checkpoint: checkpoint.as_deref(),
            };
            esx::bench::predict::run(&opts, torch.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?
        }
        Which::Sweep {
            method: Some(method),
            prune,
            trials,
            seeds,
            min_epochs,
            jobs,
            ..
        } => esx::bench::search::run(&esx::bench::search::SearchBench {
            method: esx::sweep::search::method_name(method).into(),
            prune: match prune {
                esx::config::PruneMethod::None => "none",
                esx::config::PruneMethod::Median => "median",
                esx::config::PruneMethod::Asha => "asha",
            }
            .into(),
            trials,
            seeds,
            min_epochs,
            jobs,
            exe: std::env::current_exe()?,
        })?,
        Which::Sweep {
            runs, jobs, steps, ..
        } => esx::bench::sweep::run(&esx::bench::sweep::SweepBench {
            runs,
            jobs,
            steps,
            exe: std::env::current_exe()?,
        })?,
        Which::Report { runs, points, keep } => {
            esx::bench::report::run(&esx::bench::report::ReportBench {
                runs,
                points,
                keep,
                exe: std::env::current_exe()?,
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?
        }
        Which::Data {
            frames,
            frame_size,
            batch,
            crop,
            batches,
        } => {
            let scratch = tempfile::tempdir()?;
            let opts = esx::bench::data::DataBench {
                frames,
                frame_size,
                batch,
                crop,
                batches,
            };
            esx::bench::data::run(&opts, scratch.path())?
        }
    };
    print_figures(&figures, args.json)
}

/// `esx bench train`: the shapes parsed, the device opened once, each
/// figure printed as soon as it is measured.
#[allow(clippy::too_many_arguments)]
fn train_bench(
    json: bool,
    device: &str,
    train: &[String],
    infer: &[String],
    steps: usize,
    rounds: usize,
    precision: esx::config::Precision,
    torch: TorchArgs,
) -> anyhow::Result<()> {
    let torch = torch.into_torch(device, precision);
    let dev = esx::device::open(device, precision)?;
    let mut print = printer(json);
    print(esx::bench::train::setup(device, &dev));
    let all = esx::bench::train::run(
        &parse_shapes(train)?,
        &parse_shapes(infer)?,
        steps,
        rounds,
        torch.as_ref(),
        &dev,
        &mut print,
    )?;
    if let Some(libraries) = esx::bench::train::libraries() {
        print(libraries);
    }
    if !all {
        anyhow::bail!("some shapes could not be measured (FAILED above)");
    }
    Ok(())
}

/// BATCHxSIZE shapes, the size a positive multiple of 8.
fn parse_shapes(v: &[String]) -> anyhow::Result<Vec<(usize, usize)>> {
    v.iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bad = || anyhow::anyhow!("shape `{s}`: expected BATCHxSIZE with a positive batch and a size that is a positive multiple of 8, e.g. 2x256");
            let (b, n) = s.split_once('x').ok_or_else(bad)?;
            let (b, n): (usize, usize) =
                (b.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
            if b == 0 || n == 0 || !n.is_multiple_of(8) {
                return Err(bad());
            }
            Ok((b, n))
        })
        .collect()
}

/// `esx bench parity`: a device against the CPU on the same weights.
#[allow(clippy::too_many_arguments)]
fn parity_bench(
    json: bool,
    device: &str,
    batch: usize,
    size: usize,
    dtype: &[String],
    steps: usize,
    lr: f64,
    precision: esx::config::Precision,
) -> anyhow::Result<()> {
    if size == 0 || !size.is_multiple_of(8) || batch == 0 {
        anyhow::bail!(
            "--size must be a positive multiple of 8 and --batch positive (got {size}, {batch})"
        );
    }
    let dtypes = dtype
        .iter()
        .map(|d| match d.as_str() {
            "f64" => Ok(candle_core::DType::F64),
            "f32" => Ok(candle_core::DType::F32),
            other => Err(anyhow::anyhow!("--dtype `{other}`: expected f64 or f32")),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dev = esx::device::open(device, precision)?;
    let opts = esx::bench::parity::ParityBench {
        batch,
        size,
        dtypes,
        steps,
        lr,
        tf32: precision == esx::config::Precision::Tf32 && !dev.is_cpu(),
    };
    let mut print = printer(json);
    print(esx::bench::train::setup(device, &dev));
    let ok = esx::bench::parity::run(&opts, &dev, &mut print)?;
    if let Some(libraries) = esx::bench::train::libraries() {
        print(libraries);
    }
    if !ok {
        anyhow::bail!("{device} differs from the CPU beyond the bounds above");
    }
    Ok(())
}

/// Prints each figure as it is measured: a line, or with `json` a JSON
/// object on a line of its own (a run cut short keeps what it measured).
fn printer(json: bool) -> impl FnMut(esx::bench::Figure) {
    move |f| {
        if json {
            println!("{}", serde_json::to_string(&f).unwrap_or_default());
        } else {
            println!("{}", f.line());
        }
    }
}

fn print_figures(figures: &[esx::bench::Figure], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&figures);
    }
    for f in figures {
        println!("{}", f.line());
    }
    Ok(())
}
