//! Sweeps: a grid or a random sample of configurations, each trained as its
//! own `esx run` child process, by a local process pool or a Slurm array job.
//!
//! A sweep's identity is a hash of what it runs (the resolved base config,
//! the axes and the sampling), so the same command finds the same sweep again
//! and only runs the points that have not completed. Its folder
//! `<runs>/<sweep-id>/` holds `sweep.db` (the plan and every launch) and the
//! runs (`<index>-<run-id>/run.db`), each written by its own process.

pub mod decision;
pub mod launch;
pub mod local;
pub mod member;
pub mod plan;
pub mod prune;
pub mod record;
pub mod search;
pub mod slurm;
pub mod source;
pub mod state;
pub mod task;
pub mod tpe;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub use plan::{Axis, Mode, Point};
pub use record::SweepRecord;
pub use search::{Search, SearchFlags};
pub use state::{PointState, PointStatus};
pub use task::{Task, TaskOutcome};

use crate::config::{compose, Composed, Override};
use crate::progress::Reporter;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("nothing to sweep: add a [sweep] table to the experiment or give key=a,b on the command line")]
    NoAxes,
    #[error("{key}: {why}")]
    BadAxis { key: String, why: String },
    #[error("{key}={spec} is a distribution, not a grid: search it with method = \"random\" or \"tpe\" (--method, --trials N)")]
    NotAGrid { key: String, spec: String },
    #[error("the grid has {} points (axes of {}); at most {} are allowed",
        .sizes.iter().map(|&n| n as u128).product::<u128>(),
        .sizes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" × "),
        plan::MAX_POINTS)]
    TooMany { sizes: Vec<usize> },
    #[error("point {index} ({label}): {error}")]
    Point {
        index: usize,
        label: String,
        error: Box<crate::config::ConfigError>,
    },
    #[error(transparent)]
    Config(#[from] Box<crate::config::ConfigError>),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a sweep folder of this esx: {why}")]
    BadRecord { path: PathBuf, why: String },
    #[error("{0}")]
    Launcher(String),
    #[error("the objective {objective} is not recorded: point {index} ended without it; its run records {keys} (set search.objective or --objective)")]
    NoObjective {
        objective: String,
        index: usize,
        keys: String,
    },
}

impl SweepError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SweepError {
        SweepError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A sweep planned from an experiment file and command-line overrides.
pub struct Sweep {
    pub id: String,
    /// `<runs>/<id>`.
    pub dir: PathBuf,
    pub runs_root: PathBuf,
    pub experiment: PathBuf,
    /// The overrides that are not sweeps, as given to every point.
    pub base_overrides: Vec<String>,
    pub axes: Vec<Axis>,
    pub mode: Mode,
    pub search: Search,
    /// Every point planned: all of a grid's or random search's; the ones
    /// proposed so far of a TPE search.
    pub points: Vec<Point>,
    /// The base configuration (without the swept values).
    pub base: Composed,
    /// Each point's resolved configuration, in point order.
    pub configs: Vec<crate::config::Config>,
}

impl Sweep {
    /// Composes the base and every point (so a bad value fails before anything
    /// launches) and derives the sweep's id.
    pub fn plan(
        experiment: &Path,
        overrides: &[Override],
        flags: &SearchFlags,
        runs_root: &Path,
    ) -> Result<Sweep, SweepError> {
        let base = compose(experiment, overrides, true).map_err(Box::new)?;
        let search = Search::resolve(&base.config.search, flags, base.config.epochs)?;
        search::check_tuned_objective(&search, &base.config)?;
        // A plain value on the command line fixes a key the file sweeps.
        let fixed: Vec<&str> = overrides
            .iter()
            .filter(|o| !matches!(o.value, Some(crate::config::OverrideValue::Sweep(_))))
            .map(|o| o.key.as_str())
            .collect();
        let mut file_axes = base.config.sweep.clone();
        file_axes.retain(|key, _| !fixed.contains(&key.as_str()));
        let axes = plan::axes(&file_axes, &base.sweeps)?;
        let mode = match (search.method, search.trials) {
            (search::SearchMethod::Random, Some(n)) => Mode::Sample {
                n,
                seed: search.seed,
            },
            (search::SearchMethod::Tpe, Some(n)) => Mode::Tpe {
                n,
                seed: search.seed,
            },
            _ => Mode::Grid,
        };
        let id = sweep_id(&base, &axes, mode, &search);
        let dir = runs_root.join(&id);
        let points = match mode {
            // Proposed as the search goes: the ones recorded so far.
            Mode::Tpe { .. } => {
                let mut points = SweepRecord::recorded_points(&dir, &id)?;
                for p in &mut points {
                    p.values
                        .sort_by_key(|(k, _)| axes.iter().position(|a| a.key == *k));
                }
                points
            }
            _ => plan::points(&axes, mode)?,
        };
        let base_overrides = base.overrides.clone();
        let mut sweep = Sweep {
            dir,
            id,
            runs_root: runs_root.to_path_buf(),
            experiment: experiment.to_path_buf(),
            base_overrides,
            axes,
            mode,
            search,
            points: Vec::new(),
            base,
            configs: Vec::new(),
        };
        sweep.configs = points
            .par_iter()
            .map(|p| sweep.compose_point(p))
            .collect::<Vec<_>>()
            // In point order: the first bad point is reported, whichever thread failed first.
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        sweep.points = points;
        if let Mode::Tpe { seed, .. } = mode {
            // Any point of the space must compose: one drawn now stands for them.
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
            let probe = Point {
                index: sweep.points.len(),
                values: plan::draw(&sweep.axes, &mut rng),
            };
            sweep.compose_point(&probe)?;
        }
        Ok(sweep)
    }

    /// Point `p`'s resolved configuration, checked against the search.
    pub fn compose_point(&self, p: &Point) -> Result<crate::config::Config, SweepError> {
        let point_error = |error: crate::config::ConfigError| SweepError::Point {
            index: p.index,
            label: p.label(),
            error: Box::new(error),
        };
        let mut all = self.base_overrides.clone();
        all.extend(p.overrides());
        let parsed = all
            .iter()
            .map(|t| Override::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(point_error)?;
        let config = compose(&self.experiment, &parsed, false).map_err(point_error)?;
        let config = config.config;
        if let search::Pruning::Median { min_epochs } | search::Pruning::Asha { min_epochs, .. } =
            self.search.pruning
        {
            if min_epochs > config.epochs {
                return Err(SweepError::Point {
                    index: p.index,
                    label: p.label(),
                    error: Box::new(crate::config::ConfigError::InvalidValue {
                        key: "search.min_epochs".into(),
                        value: min_epochs.to_string(),
                        why: format!("more than this point's epochs ({})", config.epochs),
                    }),
                });
            }
        }
        Ok(config)
    }

    /// The `esx run` arguments (after the program name) that start `point`
    /// as a fresh run of this sweep.
    pub fn run_args(&self, point: &Point, extra: &[String]) -> Vec<String> {
        let mut args = vec!["run".to_string(), self.experiment.display().to_string()];
        args.extend(self.base_overrides.iter().cloned());
        args.extend(point.overrides());
        args.extend(extra.iter().cloned());
        args.extend([
            "--runs".into(),
            self.runs_root.display().to_string(),
            "--sweep".into(),
            self.dir.display().to_string(),
            "--point".into(),
            point.index.to_string(),
            "--quiet".into(),
        ]);
        args
    }

    /// What each point needs now: nothing (completed), a fresh run, or the
    /// resumption of an interrupted one.
    pub fn tasks(&self, states: &[PointState]) -> Vec<Task> {
        self.points
            .iter()
            .zip(states)
            .filter_map(|(p, s)| Task::for_point(p, s))
            .collect()
    }

    /// Synthesises and prepares the data of every distinct data configuration
    /// once, before the runs start, so that parallel runs never prepare the
    /// same files at once. A failure is reported and left to the runs that
    /// need that data (they record it).
    pub fn prepare_data(&self, tasks: &[Task], reporter: &Reporter) {
        let mut seen: Vec<&crate::config::DataConfig> = Vec::new();
        for task in tasks {
            let config = &self.configs[task.index];
            if seen.contains(&&config.data) {
                continue;
            }
            seen.push(&config.data);
            if let Err(e) = crate::train::dataset::prepare(config, reporter) {
                reporter.warn(format!("data of point {}: {e}", task.index));
            }
        }
    }
}

/// Eight characters [0-9a-z] from a hash of the base config, the axes, the
/// mode and (when it is not a plain grid or sample) the search.
fn sweep_id(base: &Composed, axes: &[Axis], mode: Mode, search: &Search) -> String {
    let mut config = base.config.clone();
    config.sweep.clear();
    config.search = Default::default();
    let mut hasher = Sha256::new();
    hasher.update(toml::to_string(&config).unwrap_or_default());
    for axis in axes {
        hasher.update(format!("\n{}={}", axis.key, axis.spec));
    }
    // A TPE search with more trials is the same search, continued.
    let (mode, search) = match mode {
        Mode::Tpe { seed, .. } => (
            Mode::Tpe { n: 0, seed },
            Search {
                trials: None,
                ..search.clone()
            },
        ),
        other => (other, search.clone()),
    };
    hasher.update(format!(
        "\n{}",
        serde_json::to_string(&mode).unwrap_or_default()
    ));
    if !search.pruning.is_none() || search.method == search::SearchMethod::Tpe {
        hasher.update(format!(
            "\n{}",
            serde_json::to_string(&search).unwrap_or_default()
        ));
    }
    let digest = hasher.finalize();
    let mut n = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| {
            let c = ALPHABET[(n % 36) as usize] as char;
            n /= 36;
            c
        })
        .collect()
}
