//! `esx bench sweep --method tpe --prune asha`: what an adaptive search
//! saves. On a small synthetic task whose best region is known from its
//! full grid (learning rate × initial sigma, real training through the real
//! binary), the compute a search spends until one of its runs comes within
//! 2 % of the grid's best objective, against the compute of the full grid,
//! for several search seeds.
//!
//! Compute is run seconds: the sum over runs of the time each trained
//! (start to end as it records it), counted up to the end of the first run
//! that comes within 2 %.

use super::sweep::SweepBenchError;
use super::Figure;

pub struct SearchBench {
    pub method: String,
    pub prune: String,
    pub trials: usize,
    pub seeds: usize,
    pub min_epochs: u32,
    pub jobs: usize,
    pub exe: std::path::PathBuf,
}

/// The task: 6 epochs of 4 steps on a tiny synthetic dataset; validation
/// IoU peaks near lr 1e-3 with sigma 1.0 and falls off around it.
const AXES: [&str; 2] = [
    "lr=1e-2,5e-3,2e-3,1e-3,5e-4,2e-4,1e-4",
    "model.sigma_init=range(0.4,1.6,0.2)",
];

fn experiment() -> String {
    super::sweep::tiny_experiment(6, 4)
}

/// One run of a search report: (start, end, best objective) in seconds since the epoch.
struct Trial {
    start: f64,
    end: f64,
    value: Option<f64>,
}

fn trials(report: &serde_json::Value) -> Vec<Trial> {
    let objectives = report["objectives"].as_array().cloned().unwrap_or_default();
    report["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let index = p[0]["index"].as_u64()? as usize;
            let run = &p[1]["run"];
            Some(Trial {
                start: run["created"].as_f64()?,
                end: run["ended"].as_f64()?,
                value: objectives.get(index).and_then(|v| v.as_f64()),
            })
        })
        .collect()
}

/// Run seconds spent until the first run within `tolerance` of `best`
/// ended (None when none did), and in all.
fn compute_to_reach(trials: &[Trial], best: f64, tolerance: f64) -> (Option<f64>, f64) {
    let total: f64 = trials.iter().map(|t| t.end - t.start).sum();
    let reached = trials
        .iter()
        .filter(|t| t.value.is_some_and(|v| v >= best * (1.0 - tolerance)))
        .map(|t| t.end)
        .reduce(f64::min);
    let spent = reached.map(|at| {
        trials
            .iter()
            .map(|t| (t.end.min(at) - t.start).max(0.0))
            .sum()
    });
    (spent, total)
}

pub fn run(opts: &SearchBench) -> Result<Vec<Figure>, SweepBenchError> {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    std::fs::write(dir.join("bench.toml"), experiment())?;
    let sweep = |args: Vec<String>| super::sweep::sweep(dir, &opts.exe, &args);
    let base = |extra: &[String]| {
        let mut args = vec!["bench.toml".to_string()];
        args.extend(AXES.iter().map(|a| a.to_string()));
        args.extend(["--jobs".into(), opts.jobs.to_string()]);
        args.extend(extra.iter().cloned());
        args
    };
    let grid = sweep(base(&[]))?;
    let grid_trials = trials(&grid);
    let best = grid_trials
        .iter()
        .filter_map(|t| t.value)
        .fold(f64::NEG_INFINITY, f64::max);
    let (grid_reach, grid_total) = compute_to_reach(&grid_trials, best, 0.02);
    let mut figures = vec![Figure {
        name: "grid: run seconds".into(),
        value: grid_total,
        unit: "s".into(),
        target: None,
        detail: format!(
            "{} points, best val/iou {best:.4}; in grid order within 2 % after {}",
            grid_trials.len(),
            grid_reach.map_or("never".into(), |s| format!("{s:.1} s"))
        ),
    }];
    let mut ratios = Vec::new();
    for seed in 0..opts.seeds {
        let report = sweep(base(&[
            "--method".into(),
            opts.method.clone(),
            "--trials".into(),
            opts.trials.to_string(),
            "--prune".into(),
            opts.prune.clone(),
            "--min-epochs".into(),
            opts.min_epochs.to_string(),
            "--seed".into(),
            seed.to_string(),
        ]))?;
        let t = trials(&report);
        let found = t
            .iter()
            .filter_map(|t| t.value)
            .fold(f64::NEG_INFINITY, f64::max);
        let pruned = report["points"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p[1]["status"] == "pruned")
            .count();
        let (reach, total) = compute_to_reach(&t, best, 0.02);
        let ratio = reach.map(|r| r / grid_total);
        if let Some(r) = ratio {
            ratios.push(r);
        }
        figures.push(Figure {
            name: format!("{}+{} seed {seed}: to within 2 % ÷ grid", opts.method, opts.prune),
            value: ratio.unwrap_or(f64::NAN),
            unit: "×".into(),
            target: Some("≤ 0.33".into()),
            detail: format!(
                "{} trials ({pruned} pruned, rungs from epoch {}), best {found:.4}; {} to reach, {total:.1} s in all",
                t.len(),
                opts.min_epochs,
                reach.map_or("never within 2 %".into(), |s| format!("{s:.1} s"))
            ),
        });
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        figures.push(Figure {
            name: "seeds within 2 % at ≤ a third of the grid".into(),
            value: ratios.iter().filter(|&&r| r <= 1.0 / 3.0).count() as f64,
            unit: format!("of {}", opts.seeds),
            target: Some(format!("{} of {}", opts.seeds, opts.seeds)),
            detail: format!(
                "{} of {} seeds came within 2 % of the grid's best at all; median ratio of those {:.3}",
                ratios.len(),
                opts.seeds,
                ratios[ratios.len() / 2]
            ),
        });
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_counts_every_run_up_to_the_first_good_end() {
        let trials = [
            Trial {
                start: 0.0,
                end: 4.0,
                value: Some(0.5),
            },
            Trial {
                start: 0.0,
                end: 2.0,
                value: Some(0.1),
            },
            Trial {
                start: 2.0,
                end: 3.0,
                value: Some(0.99),
            },
            Trial {
                start: 3.0,
                end: 6.0,
                value: Some(1.0),
            },
        ];
        // Reached at t = 3 (0.99 is within 2 % of 1.0): 3 + 2 + 1 run seconds.
        let (reach, total) = compute_to_reach(&trials, 1.0, 0.02);
        assert_eq!((reach, total), (Some(6.0), 10.0));
        assert_eq!(compute_to_reach(&trials[..2], 1.0, 0.02).0, None);
    }
}
