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
    fn into_torch(self, device: &str) -> Option<esx::bench::train::Torch> {
        let script = self.torch_script;
        self.torch.map(|python| esx::bench::train::Torch {
            python,
            script,
            device: device.to_string(),
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
    /// Training step and inference speed of BranchedERFNet (f32), on the CPU or a GPU
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
        #[command(flatten)]
        torch: TorchArgs,
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
    /// Data: instance centres (exact medoid, approx), one large medoid, batch throughput
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
            torch,
        } => {
            let parse = |v: &[String]| -> anyhow::Result<Vec<(usize, usize)>> {
                v.iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        let (b, n) = s.split_once('x').ok_or_else(|| {
                            anyhow::anyhow!("shape `{s}`: expected BATCHxSIZE, e.g. 2x256")
                        })?;
                        Ok((b.parse()?, n.parse()?))
                    })
                    .collect()
            };
            let torch = torch.into_torch(&device);
            let dev = esx::train::device(&device)?;
            let mut figures = vec![esx::bench::train::setup(&device, &dev)];
            figures.extend(esx::bench::train::run(
                &parse(&train)?,
                &parse(&infer)?,
                steps,
                rounds,
                torch.as_ref(),
                &dev,
            )?);
            figures
        }
        Which::Predict {
            sizes,
            runs,
            checkpoint,
            torch,
        } => {
            let torch = torch.into_torch("cpu");
            let opts = esx::bench::predict::PredictBench {
                sizes: &sizes,
                runs,
                checkpoint: checkpoint.as_deref(),
            };
            esx::bench::predict::run(&opts, torch.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?
        }
        Which::Sweep { runs, jobs, steps } => {
            esx::bench::sweep::run(&esx::bench::sweep::SweepBench {
                runs,
                jobs,
                steps,
                exe: std::env::current_exe()?,
            })?
        }
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
    if args.json {
        return print_json(&figures);
    }
    for f in &figures {
        println!("{}", f.line());
    }
    Ok(())
}
