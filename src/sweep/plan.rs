//! A sweep's points: the axes from the experiment's `[sweep]` table and the
//! command line (which replaces the file's axis for the same key), expanded
//! as a Cartesian grid or sampled for random search.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SweepError;
use crate::config::overrides::format_value;
use crate::config::{Override, OverrideKind, OverrideValue, SweepSpec};

/// One swept key and the values it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub spec: SweepSpec,
}

/// How the points are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Mode {
    Grid,
    Sample {
        n: usize,
        seed: u64,
    },
    /// `n` points proposed one by one by TPE.
    Tpe {
        n: usize,
        seed: u64,
    },
}

/// One planned run: its index in the sweep and the value of every axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub index: usize,
    pub values: Vec<(String, toml::Value)>,
}

impl Point {
    /// The command-line overrides that set this point's values.
    pub fn overrides(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|(key, value)| {
                Override {
                    kind: OverrideKind::Set,
                    key: key.clone(),
                    value: Some(OverrideValue::Value(value.clone())),
                }
                .to_string()
            })
            .collect()
    }

    /// key → value as JSON, as each run records its swept values.
    pub fn swept_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.values
            .iter()
            .map(|(k, v)| {
                let json = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
                (k.clone(), json)
            })
            .collect()
    }

    /// `key=value key=value`, for tables and progress lines.
    pub fn label(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={}", format_value(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The axes of a sweep: the file's `[sweep]` table (keys in order), then the
/// command line's, each replacing a file axis of the same key in place.
pub fn axes(
    file: &BTreeMap<String, toml::Value>,
    cli: &[(String, SweepSpec)],
) -> Result<Vec<Axis>, SweepError> {
    let mut axes = Vec::new();
    for (key, value) in file {
        let spec = SweepSpec::from_toml(value).map_err(|why| SweepError::BadAxis {
            key: format!("sweep.\"{key}\""),
            why,
        })?;
        axes.push(Axis {
            key: key.clone(),
            spec,
        });
    }
    for (key, spec) in cli {
        let axis = Axis {
            key: key.clone(),
            spec: spec.clone(),
        };
        match axes.iter_mut().find(|a| a.key == *key) {
            Some(existing) => *existing = axis,
            None => axes.push(axis),
        }
    }
    if axes.is_empty() {
        return Err(SweepError::NoAxes);
    }
    Ok(axes)
}

/// The points of `mode` over `axes`.
pub fn points(axes: &[Axis], mode: Mode) -> Result<Vec<Point>, SweepError> {
    match mode {
        Mode::Grid => grid(axes),
        Mode::Sample { n, seed } => Ok(sample(axes, n, seed)),
        Mode::Tpe { .. } => Ok(Vec::new()),
    }
}

/// The Cartesian product, the last axis varying fastest (as Hydra's multirun).
fn grid(axes: &[Axis]) -> Result<Vec<Point>, SweepError> {
    let mut columns = Vec::with_capacity(axes.len());
    for axis in axes {
        if !axis.spec.is_grid() {
            return Err(SweepError::NotAGrid {
                key: axis.key.clone(),
                spec: axis.spec.to_string(),
            });
        }
        columns.push(axis.spec.values());
    }
    let total = columns
        .iter()
        .try_fold(1usize, |n, c| n.checked_mul(c.len()));
    let total = match total {
        Some(n) if n <= MAX_POINTS => n,
        _ => {
            return Err(SweepError::TooMany {
                sizes: columns.iter().map(Vec::len).collect(),
            })
        }
    };
    Ok((0..total)
        .map(|index| {
            let mut rest = index;
            let mut values = vec![(String::new(), toml::Value::Boolean(false)); axes.len()];
            for (a, column) in axes.iter().zip(&columns).rev() {
                let pos = axes.iter().position(|x| x.key == a.key).unwrap_or(0);
                values[pos] = (a.key.clone(), column[rest % column.len()].clone());
                rest /= column.len();
            }
            Point { index, values }
        })
        .collect())
}

/// More points than this is surely a mistake (a range with a tiny step).
pub const MAX_POINTS: usize = 10_000;

/// `n` points drawn independently: lists, ranges and choices uniformly among
/// their values, `uniform` and `loguniform` continuously (rounded to six
/// significant digits so that the values read well in tables and overrides).
fn sample(axes: &[Axis], n: usize, seed: u64) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|index| Point {
            index,
            values: draw(axes, &mut rng),
        })
        .collect()
}

/// One value of every axis, drawn as random search draws them.
pub fn draw(axes: &[Axis], rng: &mut ChaCha8Rng) -> Vec<(String, toml::Value)> {
    axes.iter()
        .map(|a| {
            let value = match &a.spec {
                SweepSpec::Uniform(lo, hi) => {
                    toml::Value::Float(round6(rng.random_range(*lo..*hi)))
                }
                SweepSpec::LogUniform(lo, hi) => toml::Value::Float(round6(
                    rng.random_range(lo.ln()..hi.ln()).exp().clamp(*lo, *hi),
                )),
                grid => {
                    let values = grid.values();
                    values[rng.random_range(0..values.len())].clone()
                }
            };
            (a.key.clone(), value)
        })
        .collect()
}

pub fn round6(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(text: &str) -> (String, SweepSpec) {
        let (k, v) = text.split_once('=').unwrap();
        (k.to_string(), SweepSpec::parse(v).unwrap().unwrap())
    }

    fn file(entries: &[(&str, &str)]) -> BTreeMap<String, toml::Value> {
        entries
            .iter()
            .map(|(k, v)| {
                let t: toml::Table = toml::from_str(&format!("v = {v}")).unwrap();
                (k.to_string(), t["v"].clone())
            })
            .collect()
    }

    #[test]
    fn grid_is_the_cartesian_product_last_axis_fastest() {
        let axes = axes(
            &file(&[("model.sigma_init", "[0.5, 1.0, 1.5]")]),
            &[cli("lr=1e-3,1e-4")],
        )
        .unwrap();
        let pts = points(&axes, Mode::Grid).unwrap();
        assert_eq!(pts.len(), 6);
        let labels: Vec<String> = pts.iter().map(Point::label).collect();
        assert_eq!(labels[0], "model.sigma_init=0.5 lr=0.001");
        assert_eq!(labels[1], "model.sigma_init=0.5 lr=0.0001");
        assert_eq!(labels[5], "model.sigma_init=1.5 lr=0.0001");
        assert!(pts.iter().enumerate().all(|(i, p)| p.index == i));
        assert_eq!(pts[3].overrides(), ["model.sigma_init=1.0", "lr=0.0001"]);
    }

    #[test]
    fn command_line_axes_replace_the_files_in_place() {
        let axes = axes(
            &file(&[("lr", "[1, 2]"), ("seed", "\"range(3)\"")]),
            &[cli("lr=range(0.5,2,0.5)")],
        )
        .unwrap();
        assert_eq!(axes[0].key, "lr");
        assert_eq!(axes[0].spec.values().len(), 3);
        assert_eq!(points(&axes, Mode::Grid).unwrap().len(), 9);
    }

    #[test]
    fn distributions_need_sampling_and_bad_axes_are_named() {
        let a = axes(&BTreeMap::new(), &[cli("lr=loguniform(1e-5,1e-2)")]).unwrap();
        let err = points(&a, Mode::Grid).unwrap_err().to_string();
        assert!(
            err.contains("lr") && err.contains("method = \"random\""),
            "{err}"
        );
        let err = axes(&file(&[("lr", "0.1")]), &[]).unwrap_err().to_string();
        assert!(err.contains("sweep.\"lr\""), "{err}");
        assert!(matches!(
            axes(&BTreeMap::new(), &[]),
            Err(SweepError::NoAxes)
        ));
        // Each axis within its 10,000 values, their product beyond the cap.
        let huge = axes(
            &BTreeMap::new(),
            &[cli("seed=range(1000)"), cli("lr=range(0, 1, 0.01)")],
        )
        .unwrap();
        assert!(matches!(
            points(&huge, Mode::Grid),
            Err(SweepError::TooMany { .. })
        ));
    }

    #[test]
    fn sampling_is_seeded_and_stays_inside_the_space() {
        let a = axes(
            &BTreeMap::new(),
            &[
                cli("lr=loguniform(1e-5,1e-2)"),
                cli("model.sigma_init=uniform(0.5,1.5)"),
                cli("batch_size=choice(2,4,8)"),
            ],
        )
        .unwrap();
        let mode = Mode::Sample { n: 200, seed: 7 };
        let p = points(&a, mode).unwrap();
        assert_eq!(p, points(&a, mode).unwrap());
        assert_ne!(p, points(&a, Mode::Sample { n: 200, seed: 8 }).unwrap());
        let lrs: Vec<f64> = p
            .iter()
            .map(|x| x.values[0].1.as_float().unwrap())
            .collect();
        assert!(lrs.iter().all(|&x| (1e-5..=1e-2).contains(&x)));
        // Log-uniform: about a third of the draws in each decade.
        let low = lrs.iter().filter(|&&x| x < 1e-4).count();
        assert!((40..95).contains(&low), "{low} of 200 below 1e-4");
        let batches: std::collections::BTreeSet<i64> = p
            .iter()
            .map(|x| x.values[2].1.as_integer().unwrap())
            .collect();
        assert_eq!(batches.into_iter().collect::<Vec<_>>(), [2, 4, 8]);
    }
}
