//! TPE proposals (the `tpe` crate: Optuna's independent sampler, one
//! estimator per axis) from the results so far.
//!
//! - The first `tpe_startup(trials)` points, or any point while nothing has
//!   finished, are random draws, as Optuna's `n_startup_trials`.
//! - Axes: `uniform` a Parzen estimator over the interval, `loguniform` one
//!   over its logarithm, `range(…)` and lists of three or more numbers in
//!   order one over the value's position (an ordered axis), other lists and
//!   `choice(…)` a histogram over the options.
//! - Points still running are told the worst finished value ("constant
//!   liar", as Optuna's `constant_liar`), so parallel slots spread out.
//! - A pruned point counts with its best value so far, but never better than
//!   the worst completed point: it stopped because it was losing.
//! - Each proposal draws from its own generator, seeded by the sweep's seed
//!   and the point's index: the same history gives the same point.

use rand::SeedableRng as _;

use super::plan::{draw, round6, Axis, Point};
use super::search::{tpe_startup, Direction, Search};
use crate::config::SweepSpec;

/// A point with its result so far.
#[derive(Clone, Debug)]
pub struct Observation {
    pub values: Vec<(String, toml::Value)>,
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Still training (or queued): a lie is told for it.
    Running,
    Completed(f64),
    /// Stopped early with this best value.
    Pruned(f64),
}

/// Point `index` of a TPE search over `axes`, and how it was chosen.
pub fn propose(
    axes: &[Axis],
    search: &Search,
    index: usize,
    history: &[Observation],
) -> (Point, String) {
    let trials = search.trials.unwrap_or(1);
    let seed = search.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let score = |v: f64| match search.direction {
        Direction::Max => -v,
        Direction::Min => v,
    };
    let completed: Vec<f64> = history
        .iter()
        .filter_map(|o| match o.outcome {
            Outcome::Completed(v) => Some(score(v)),
            _ => None,
        })
        .collect();
    let pruned_floor = completed.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let told: Vec<(usize, f64)> = history
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o.outcome {
            Outcome::Completed(v) => Some((i, score(v))),
            Outcome::Pruned(v) => Some((i, score(v).max(pruned_floor))),
            Outcome::Running => None,
        })
        .collect();
    // A finite space (every axis a list, range or choice): a point already
    // tried is drawn again rather than repeated.
    let finite = axes.iter().all(|a| a.spec.is_grid());
    let seen = |values: &[(String, toml::Value)]| {
        finite && history.iter().any(|o| o.values.as_slice() == values)
    };
    if index < tpe_startup(trials) || told.is_empty() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut values = draw(axes, &mut rng);
        for _ in 0..REDRAWS {
            if !seen(&values) {
                break;
            }
            values = draw(axes, &mut rng);
        }
        let values = unvisited_if_seen(axes, history, values, seen, &mut rng);
        return (Point { index, values }, "random (TPE start-up)".into());
    }
    let liar = told.iter().map(|t| t.1).fold(f64::NEG_INFINITY, f64::max);
    let running: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, o)| o.outcome == Outcome::Running)
        .map(|(i, _)| i)
        .collect();
    let mut optimizers: Vec<(Encoding, tpe::TpeOptimizer)> = axes
        .iter()
        .map(|axis| optimizer(axis, history, &told, &running, liar))
        .collect();
    let mut rng = <rand_tpe::rngs::ChaCha8Rng as rand_tpe::SeedableRng>::seed_from_u64(seed);
    let mut ask = || -> Vec<(String, toml::Value)> {
        axes.iter()
            .zip(optimizers.iter_mut())
            .map(|(axis, (encoding, optimizer))| {
                let (lo, hi) = encoding.bounds();
                let x = optimizer.ask(&mut rng).unwrap_or((lo + hi) / 2.0);
                (axis.key.clone(), encoding.decode(x))
            })
            .collect()
    };
    let mut values = ask();
    let mut redrawn = 0;
    while seen(&values) && redrawn < REDRAWS {
        values = ask();
        redrawn += 1;
    }
    let mut fallback = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let repeated = seen(&values);
    let values = unvisited_if_seen(axes, history, values, seen, &mut fallback);
    (
        Point { index, values },
        format!(
            "tpe from {} result{} ({} running told the worst){}",
            told.len(),
            if told.len() == 1 { "" } else { "s" },
            running.len(),
            if repeated {
                "; its proposals were all tried, so an untried point instead"
            } else {
                ""
            }
        ),
    )
}

/// Proposals drawn again when they repeat a point tried before.
const REDRAWS: usize = 16;

/// `values`, or when `seen` says they were tried, an untried point of the
/// (finite) space chosen at random; `values` again when every point was tried.
fn unvisited_if_seen(
    axes: &[Axis],
    history: &[Observation],
    values: Vec<(String, toml::Value)>,
    seen: impl Fn(&[(String, toml::Value)]) -> bool,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<(String, toml::Value)> {
    use rand::Rng as _;
    if !seen(&values) {
        return values;
    }
    let Ok(all) = super::plan::points(axes, super::plan::Mode::Grid) else {
        return values;
    };
    let untried: Vec<_> = all
        .into_iter()
        .filter(|p| !history.iter().any(|o| o.values == p.values))
        .collect();
    if untried.is_empty() {
        return values;
    }
    let pick = rng.random_range(0..untried.len());
    untried.into_iter().nth(pick).map_or(values, |p| p.values)
}

/// How one axis is modelled.
enum Encoding {
    Linear(f64, f64),
    Log(f64, f64),
    Ordered(Vec<toml::Value>),
    Categorical(Vec<toml::Value>),
}

/// A list of three or more numbers in increasing or decreasing order
/// (`lr=1e-2,1e-3,1e-4`) is a scale, not a set of names: neighbours on it
/// behave alike, which TPE can use. `choice(…)` stays categorical.
fn monotonic_numbers(values: &[toml::Value]) -> bool {
    let xs: Option<Vec<f64>> = values
        .iter()
        .map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
        .collect();
    match xs {
        Some(xs) if xs.len() >= 3 => {
            xs.windows(2).all(|w| w[0] < w[1]) || xs.windows(2).all(|w| w[0] > w[1])
        }
        _ => false,
    }
}

impl Encoding {
    fn of(spec: &SweepSpec) -> Encoding {
        match spec {
            SweepSpec::Uniform(lo, hi) => Encoding::Linear(*lo, *hi),
            SweepSpec::LogUniform(lo, hi) => Encoding::Log(lo.ln(), hi.ln()),
            SweepSpec::Range { .. } => Encoding::Ordered(spec.values()),
            SweepSpec::List(v) if monotonic_numbers(v) => Encoding::Ordered(v.clone()),
            SweepSpec::List(v) | SweepSpec::Choice(v) => Encoding::Categorical(v.clone()),
        }
    }

    fn bounds(&self) -> (f64, f64) {
        match self {
            Encoding::Linear(lo, hi) | Encoding::Log(lo, hi) => (*lo, *hi),
            Encoding::Ordered(v) | Encoding::Categorical(v) => (0.0, v.len() as f64),
        }
    }

    /// A recorded value as the estimator's parameter; NaN when it is not
    /// one of the axis's (the estimator then ignores it).
    fn encode(&self, value: &toml::Value) -> f64 {
        let (lo, hi) = self.bounds();
        let inside = |x: f64| x.clamp(lo, hi - (hi - lo) * 1e-9);
        match self {
            Encoding::Linear(..) => value.as_float().map_or(f64::NAN, inside),
            Encoding::Log(..) => value
                .as_float()
                .filter(|v| *v > 0.0)
                .map_or(f64::NAN, |v| inside(v.ln())),
            Encoding::Ordered(values) => values
                .iter()
                .position(|v| v == value)
                .map_or(f64::NAN, |i| i as f64 + 0.5),
            Encoding::Categorical(values) => values
                .iter()
                .position(|v| v == value)
                .map_or(f64::NAN, |i| i as f64),
        }
    }

    fn decode(&self, x: f64) -> toml::Value {
        let index = |n: usize| (x.floor().max(0.0) as usize).min(n - 1);
        match self {
            Encoding::Linear(lo, hi) => toml::Value::Float(round6(x).clamp(*lo, *hi)),
            Encoding::Log(lo, hi) => toml::Value::Float(round6(x.exp()).clamp(lo.exp(), hi.exp())),
            Encoding::Ordered(v) | Encoding::Categorical(v) => v[index(v.len())].clone(),
        }
    }
}

/// One axis's estimator, told every result (and the lie for running points).
fn optimizer(
    axis: &Axis,
    history: &[Observation],
    told: &[(usize, f64)],
    running: &[usize],
    liar: f64,
) -> (Encoding, tpe::TpeOptimizer) {
    let encoding = Encoding::of(&axis.spec);
    let (lo, hi) = encoding.bounds();
    let range = tpe::range(lo, hi).expect("axes are checked: low < high");
    let mut optimizer = match encoding {
        Encoding::Categorical(_) => tpe::TpeOptimizer::new(tpe::histogram_estimator(), range),
        _ => tpe::TpeOptimizer::new(tpe::parzen_estimator(), range),
    };
    let value_of = |i: usize| {
        history[i]
            .values
            .iter()
            .find(|(k, _)| *k == axis.key)
            .map_or(f64::NAN, |(_, v)| encoding.encode(v))
    };
    for &(i, score) in told {
        // Told values are finite and in range (or NaN: unused), so tell cannot fail.
        let _ = optimizer.tell(value_of(i), score);
    }
    for &i in running {
        let _ = optimizer.tell(value_of(i), liar);
    }
    (encoding, optimizer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::search::{Objective, Pruning, SearchMethod};

    fn axes() -> Vec<Axis> {
        let spec = |t: &str| SweepSpec::parse(t).unwrap().unwrap();
        vec![
            Axis {
                key: "lr".into(),
                spec: spec("loguniform(1e-5,1e-1)"),
            },
            Axis {
                key: "model.sigma_init".into(),
                spec: spec("uniform(0,1)"),
            },
            Axis {
                key: "batch_size".into(),
                spec: spec("choice(2,4,8)"),
            },
            Axis {
                key: "seed".into(),
                spec: spec("range(0,10)"),
            },
        ]
    }

    fn search(trials: usize, seed: u64) -> Search {
        Search {
            method: SearchMethod::Tpe,
            trials: Some(trials),
            seed,
            objective: Objective {
                split: "val".into(),
                key: "iou".into(),
            },
            direction: Direction::Max,
            pruning: Pruning::None,
        }
    }

    /// A known optimum: lr near 1e-3, sigma near 0.7, batch 4, seed 7.
    fn objective(values: &[(String, toml::Value)]) -> f64 {
        let lr = values[0].1.as_float().unwrap();
        let s = values[1].1.as_float().unwrap();
        let b = values[2].1.as_integer().unwrap();
        let seed = values[3].1.as_integer().unwrap();
        -(lr.log10() + 3.0).powi(2)
            - 4.0 * (s - 0.7).powi(2)
            - if b == 4 { 0.0 } else { 0.5 }
            - 0.05 * (seed - 7).abs() as f64
    }

    fn search_run(trials: usize, seed: u64, parallel: usize) -> Vec<(Point, f64)> {
        let (axes, search) = (axes(), search(trials, seed));
        let mut history: Vec<Observation> = Vec::new();
        let mut points = Vec::new();
        for index in 0..trials {
            // The last `parallel - 1` proposals are still running.
            let mut view = history.clone();
            let n = view.len();
            for o in view.iter_mut().skip(n.saturating_sub(parallel - 1)) {
                o.outcome = Outcome::Running;
            }
            let (point, _) = propose(&axes, &search, index, &view);
            let v = objective(&point.values);
            history.push(Observation {
                values: point.values.clone(),
                outcome: Outcome::Completed(v),
            });
            points.push((point, v));
        }
        points
    }

    #[test]
    fn the_same_seed_and_history_propose_the_same_points() {
        let a = search_run(20, 3, 2);
        assert_eq!(
            a.iter().map(|p| &p.0).collect::<Vec<_>>(),
            search_run(20, 3, 2)
                .iter()
                .map(|p| &p.0)
                .collect::<Vec<_>>()
        );
        let b = search_run(20, 4, 2);
        assert_ne!(a[10].0, b[10].0);
        for (p, _) in &a {
            let lr = p.values[0].1.as_float().unwrap();
            assert!((1e-5..=1e-1).contains(&lr), "{lr}");
            let s = p.values[1].1.as_float().unwrap();
            assert!((0.0..=1.0).contains(&s), "{s}");
            assert!([2, 4, 8].contains(&p.values[2].1.as_integer().unwrap()));
            assert!((0..10).contains(&p.values[3].1.as_integer().unwrap()));
        }
    }

    #[test]
    fn tpe_beats_random_search_on_a_known_optimum() {
        // Over 8 seeds, the best of 40 TPE points against the best of 40 random ones.
        let (mut tpe_wins, mut tpe_sum, mut random_sum) = (0, 0.0, 0.0);
        for seed in 0..8 {
            let best_tpe = search_run(40, seed, 2)
                .iter()
                .map(|p| p.1)
                .fold(f64::MIN, f64::max);
            let points = super::super::plan::points(
                &axes(),
                super::super::plan::Mode::Sample { n: 40, seed },
            )
            .unwrap();
            let best_random = points
                .iter()
                .map(|p| objective(&p.values))
                .fold(f64::MIN, f64::max);
            tpe_wins += (best_tpe > best_random) as usize;
            tpe_sum += best_tpe;
            random_sum += best_random;
        }
        assert!(
            tpe_wins >= 5 && tpe_sum > random_sum,
            "TPE won {tpe_wins} of 8: {tpe_sum} vs {random_sum}"
        );
    }

    #[test]
    fn a_finite_space_is_not_tried_twice_until_it_is_exhausted() {
        let spec = |t: &str| SweepSpec::parse(t).unwrap().unwrap();
        let axes = vec![
            Axis {
                key: "lr".into(),
                spec: spec("1e-2,1e-3,1e-4"),
            },
            Axis {
                key: "batch_size".into(),
                spec: spec("choice(2,4)"),
            },
        ];
        let search = search(8, 5);
        let mut history: Vec<Observation> = Vec::new();
        for index in 0..8 {
            let (p, _) = propose(&axes, &search, index, &history);
            let repeat = history.iter().any(|o| o.values == p.values);
            // Six points in the space: the first six are all different.
            assert_eq!(repeat, index >= 6, "point {index}: {:?}", p.values);
            let v = p.values[0].1.as_float().unwrap();
            history.push(Observation {
                values: p.values,
                outcome: Outcome::Completed(-v.log10()),
            });
        }
    }

    #[test]
    fn ordered_lists_are_scales_and_choices_stay_categories() {
        let v = |xs: &[f64]| {
            xs.iter()
                .map(|&x| toml::Value::Float(x))
                .collect::<Vec<_>>()
        };
        assert!(monotonic_numbers(&v(&[1e-2, 1e-3, 1e-4])));
        assert!(monotonic_numbers(&[1, 2, 4].map(toml::Value::Integer)));
        assert!(!monotonic_numbers(&v(&[1e-2, 1e-4, 1e-3])));
        assert!(!monotonic_numbers(&v(&[1.0, 2.0])));
        assert!(!monotonic_numbers(
            &["a", "b", "c"].map(|s| toml::Value::String(s.into()))
        ));
        let spec = |t: &str| SweepSpec::parse(t).unwrap().unwrap();
        assert!(matches!(
            Encoding::of(&spec("1e-2,1e-3,1e-4")),
            Encoding::Ordered(_)
        ));
        assert!(matches!(
            Encoding::of(&spec("choice(2,4,8)")),
            Encoding::Categorical(_)
        ));
    }

    #[test]
    fn running_points_are_told_the_worst_and_pruned_ones_no_better_than_completed() {
        let (axes, search) = (axes(), search(8, 1));
        let point = |lr: f64| {
            vec![
                ("lr".to_string(), toml::Value::Float(lr)),
                ("model.sigma_init".to_string(), toml::Value::Float(0.5)),
                ("batch_size".to_string(), toml::Value::Integer(4)),
                ("seed".to_string(), toml::Value::Integer(1)),
            ]
        };
        let history = vec![
            Observation {
                values: point(1e-3),
                outcome: Outcome::Completed(0.8),
            },
            Observation {
                values: point(1e-2),
                outcome: Outcome::Completed(0.5),
            },
            Observation {
                values: point(1e-4),
                outcome: Outcome::Pruned(0.9),
            },
            Observation {
                values: point(1e-5),
                outcome: Outcome::Running,
            },
        ];
        let (p, how) = propose(&axes, &search, 4, &history);
        assert!(
            how.contains("3 results") && how.contains("1 running"),
            "{how}"
        );
        assert_eq!(p, propose(&axes, &search, 4, &history).0);
        // Start-up points are random draws, whatever the history.
        let (_, how) = propose(&axes, &search, 0, &history);
        assert!(how.contains("random"), "{how}");
    }
}
