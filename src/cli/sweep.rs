//! `esx sweep FILE [OVERRIDES…]`: a grid or random search of runs, locally
//! in parallel or as a Slurm array job.

use std::path::PathBuf;
use std::process::ExitCode;

use esx::config::{Direction, PruneMethod, SearchMethod};
use esx::progress::Reporter;
use esx::sweep::launch::{execute, states, Launcher, SweepReport};
use esx::sweep::local::LocalOptions;
use esx::sweep::slurm::{SlurmOptions, SIGNAL_BEFORE};
use esx::sweep::{Mode, SearchFlags, Sweep};
use esx::train::slurm_job::DEFAULT_MAX_REQUEUES;
use esx::train::Interrupt;

use super::{parse_overrides, print_json, RunsDir};

/// Run a sweep: a grid, random or TPE search, each point its own run, losing runs pruned early
#[derive(clap::Args)]
pub struct Args {
    /// Experiment file (TOML) with a [sweep] table, or give sweeps as overrides
    pub file: PathBuf,
    /// Overrides, sweeps among them: lr=1e-3,1e-4  model.sigma_init=range(0.5,2,0.5)
    /// batch_size=choice(2,4)  lr=loguniform(1e-5,1e-2) (with --sample)
    pub overrides: Vec<String>,
    #[command(flatten)]
    pub runs: RunsDir,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Print the planned runs and exit
    #[arg(long)]
    pub dry_run: bool,
    /// Where the runs go
    #[arg(long, value_enum, default_value_t = LauncherKind::Local)]
    pub launcher: LauncherKind,
    /// Local: runs at once (default: cores ÷ the config's threads)
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// Local: CUDA devices handed to the runs round robin, e.g. 0,1
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub gpus: Vec<usize>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// Print the final state as JSON
    #[arg(long)]
    pub json: bool,
    /// No per-run lines
    #[arg(long, short)]
    pub quiet: bool,
}

/// Each overrides the experiment's [search] table.
#[derive(clap::Args)]
#[command(next_help_heading = "Search ([search] in the experiment)")]
pub struct SearchArgs {
    /// How points are chosen: every grid point, random draws, or TPE proposals
    #[arg(long, value_enum)]
    pub method: Option<SearchMethod>,
    /// Points of a random or TPE search
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub trials: Option<u64>,
    /// The same as --method random --trials N
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000),
          conflicts_with_all = ["method", "trials"])]
    pub sample: Option<u64>,
    /// Seed of the random draws and TPE's proposals
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// The metric searched and pruned on, SPLIT/KEY (default val/iou)
    #[arg(long, value_name = "SPLIT/KEY")]
    pub objective: Option<String>,
    /// Whether the objective is maximised (default) or minimised
    #[arg(long, value_enum)]
    pub direction: Option<Direction>,
    /// Stop losing runs early: median or ASHA (default none)
    #[arg(long, value_enum)]
    pub prune: Option<PruneMethod>,
    /// No run is pruned before the end of this epoch (default 1)
    #[arg(long, value_name = "E")]
    pub min_epochs: Option<u32>,
    /// ASHA's η: rungs at min_epochs·η^k, the top 1/η go on (default 3)
    #[arg(long, value_name = "ETA")]
    pub reduction: Option<u32>,
}

impl SearchArgs {
    fn flags(&self) -> SearchFlags {
        let (method, trials) = match self.sample {
            Some(n) => (Some(SearchMethod::Random), Some(n as usize)),
            None => (self.method, self.trials.map(|n| n as usize)),
        };
        SearchFlags {
            method,
            trials,
            seed: self.seed,
            objective: self.objective.clone(),
            direction: self.direction,
            prune: self.prune,
            min_epochs: self.min_epochs,
            reduction: self.reduction,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum LauncherKind {
    Local,
    Slurm,
}

#[derive(clap::Args)]
#[command(next_help_heading = "Slurm (--launcher slurm)")]
pub struct SlurmArgs {
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Time limit per run, e.g. 2:00:00
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// Memory per run, e.g. 16G
    #[arg(long, value_name = "M")]
    pub mem: Option<String>,
    #[arg(long, value_name = "C")]
    pub cpus_per_task: Option<usize>,
    #[arg(long, value_name = "G")]
    pub gpus_per_task: Option<usize>,
    /// At most K runs at once
    #[arg(long, value_name = "K")]
    pub array_parallelism: Option<usize>,
    /// Follow the job until every run ends, then print the summary
    #[arg(long)]
    pub wait: bool,
    /// Seconds between squeue polls with --wait
    #[arg(long, value_name = "S", default_value_t = 2.0, hide = true)]
    pub poll: f64,
    /// Warn each task this many seconds before its time limit (SIGUSR1): it
    /// checkpoints and requeues itself; 0 asks for no warning
    #[arg(long, value_name = "S", default_value_t = SIGNAL_BEFORE)]
    pub signal_before: u32,
    /// How many times a task may requeue itself at its time limit
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_REQUEUES)]
    pub max_requeues: u32,
    /// An option passed to sbatch as it is (repeatable), e.g. --sbatch-arg=--account=lab
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_arg: Vec<String>,
    /// A shell line each task runs before esx (repeatable), e.g. --setup 'module load cuda/12'
    #[arg(long, value_name = "LINE", allow_hyphen_values = true)]
    pub setup: Vec<String>,
}

impl SlurmArgs {
    fn any_given(&self) -> bool {
        self.partition.is_some()
            || self.time.is_some()
            || self.mem.is_some()
            || self.cpus_per_task.is_some()
            || self.gpus_per_task.is_some()
            || self.array_parallelism.is_some()
            || self.wait
            || self.signal_before != SIGNAL_BEFORE
            || self.max_requeues != DEFAULT_MAX_REQUEUES
            || !self.sbatch_arg.is_empty()
            || !self.setup.is_empty()
    }
}

/// The command's flags with their cross-flag rules applied, resolved once
/// before anything is planned or launched.
struct Options {
    search: SearchFlags,
    launcher: LauncherChoice,
    dry_run: bool,
    output: Output,
}

/// Where the runs go, before the sweep's config is known (local slots
/// depend on its `threads`).
enum LauncherChoice {
    Local {
        jobs: Option<usize>,
        gpus: Vec<usize>,
    },
    Slurm(SlurmOptions),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Json,
    Quiet,
    Lines,
}

impl Options {
    fn resolve(args: &Args) -> anyhow::Result<Options> {
        let launcher = match args.launcher {
            LauncherKind::Local => {
                if args.slurm.any_given() {
                    anyhow::bail!("the Slurm options need --launcher slurm");
                }
                LauncherChoice::Local {
                    jobs: args.jobs.map(|j| j as usize),
                    gpus: args.gpus.clone(),
                }
            }
            LauncherKind::Slurm => {
                if args.jobs.is_some() || !args.gpus.is_empty() {
                    anyhow::bail!("--jobs and --gpus are for the local launcher; Slurm takes --array-parallelism and --gpus-per-task");
                }
                let options = args.slurm.options();
                options.check()?;
                LauncherChoice::Slurm(options)
            }
        };
        let output = if args.json {
            Output::Json
        } else if args.quiet {
            Output::Quiet
        } else {
            Output::Lines
        };
        Ok(Options {
            search: args.search.flags(),
            launcher,
            dry_run: args.dry_run,
            output,
        })
    }

    /// Runs at once: what a TPE search proposes ahead of results.
    fn slots(&self, sweep: &Sweep) -> usize {
        match &self.launcher {
            LauncherChoice::Local { jobs, .. } => {
                LocalOptions::new(*jobs, sweep.base.config.threads, Vec::new()).jobs
            }
            LauncherChoice::Slurm(o) => o.array_parallelism.unwrap_or(4),
        }
    }

    /// The launcher for this sweep; a TPE search on Slurm needs `--wait`.
    fn launcher(&self, sweep: &Sweep) -> anyhow::Result<Launcher> {
        Ok(match &self.launcher {
            LauncherChoice::Local { jobs, gpus } => {
                check_gpus(gpus)?;
                Launcher::Local(LocalOptions::new(
                    *jobs,
                    sweep.base.config.threads,
                    gpus.clone(),
                ))
            }
            LauncherChoice::Slurm(o) => {
                if matches!(sweep.mode, Mode::Tpe { .. }) && !o.wait {
                    anyhow::bail!("a TPE search on Slurm proposes each point from the results before it: give --wait (the launcher stays to propose)");
                }
                Launcher::Slurm(o.clone())
            }
        })
    }
}

impl SlurmArgs {
    fn options(&self) -> SlurmOptions {
        SlurmOptions {
            partition: self.partition.clone(),
            time: self.time.clone(),
            mem: self.mem.clone(),
            cpus_per_task: self.cpus_per_task,
            gpus_per_task: self.gpus_per_task,
            array_parallelism: self.array_parallelism,
            wait: self.wait,
            poll_seconds: self.poll,
            signal_before: (self.signal_before > 0).then_some(self.signal_before),
            max_requeues: self.max_requeues,
            sbatch_args: self.sbatch_arg.clone(),
            setup: self.setup.clone(),
        }
    }
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options::resolve(&args)?;
    let interrupt = Interrupt::install()?;
    let reporter = Reporter::terminal(options.output != Output::Lines);
    let overrides = parse_overrides(&args.overrides)?;
    let sweep = Sweep::plan(&args.file, &overrides, &options.search, &args.runs.runs)?;
    if options.dry_run {
        print!("{}", esx::view::sweep_plan(&sweep, &states(&sweep)?));
        if let Mode::Tpe { n, .. } = sweep.mode {
            let next = esx::sweep::source::preview(&sweep, options.slots(&sweep))?;
            print!("{}", esx::view::tpe_preview(&sweep, n, &next));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let launcher = options.launcher(&sweep)?;
    if let Launcher::Local(o) = &launcher {
        reporter.note(esx::view::local_launcher_line(o));
    }
    let exe = std::env::current_exe()?;
    let command: Vec<String> = std::env::args().collect();
    let report = execute(&sweep, &launcher, &exe, &command, &reporter, &interrupt)?;
    print_outcome(&report, options.output)?;
    if let Some(recorded) = report.objective_unrecorded() {
        eprintln!(
            "esx: error: no completed run recorded the objective {}, so no point is best; the runs record {}",
            esx::text::printable(&report.objective),
            recorded.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if report.interrupted {
        ExitCode::from(130)
    } else if !report.waited || report.all_completed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_outcome(report: &SweepReport, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        print_json(report)?;
    } else if report.waited {
        print!("{}", esx::view::sweep_summary(report));
    } else if let Some(job) = &report.job_id {
        println!(
            "sweep {}: Slurm job {job} runs {} points; follow with `squeue -j {job}` or `esx ls --sweep {}`",
            report.id,
            report.launched.len(),
            report.id
        );
    } else {
        println!(
            "sweep {}: nothing to submit; every point has completed or is queued",
            report.id
        );
    }
    Ok(())
}

/// `--gpus` names devices this machine has, before any run starts.
fn check_gpus(gpus: &[usize]) -> anyhow::Result<()> {
    let Some(&highest) = gpus.iter().max() else {
        return Ok(());
    };
    let list = gpus
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let count =
        esx::device::cuda_device_count().map_err(|why| anyhow::anyhow!("--gpus {list}: {why}"))?;
    if highest >= count {
        anyhow::bail!(
            "--gpus {list}: this machine has {count} CUDA device{} (0…{})",
            if count == 1 { "" } else { "s" },
            count.saturating_sub(1)
        );
    }
    Ok(())
}
