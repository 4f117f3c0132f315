//! Seed groups: runs that differ only in `seed` (or share the values of the
//! `--group-by` keys) are one experiment repeated. The report draws each
//! group as its mean curve in a band, its runs thin behind it, and gives
//! mean ± std of its metrics.

use std::collections::BTreeMap;

use super::collect::ReportRun;
use super::series::Points;
use super::ReportError;
use crate::store::found_by_the_run;

/// How runs are grouped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Grouping {
    /// Runs whose parameters are equal but for `seed`.
    #[default]
    Seeds,
    /// Runs with equal values of these parameters.
    By(Vec<String>),
    /// No groups.
    Off,
}

impl Grouping {
    /// `--group-by`: `none`, or KEY[,KEY…].
    pub fn parse(text: &str) -> Result<Grouping, ReportError> {
        if text == "none" {
            return Ok(Grouping::Off);
        }
        let keys: Vec<String> = text.split(',').map(|k| k.trim().to_string()).collect();
        if keys
            .iter()
            .any(|k| k.is_empty() || k.contains(char::is_whitespace))
        {
            return Err(ReportError::BadGroupBy {
                text: crate::text::shorten(text, 60),
                why: "expected KEY[,KEY…] (e.g. lr or lr,model.n_sigma) or none".into(),
            });
        }
        Ok(Grouping::By(keys))
    }
}

/// What a group's band spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Band {
    /// From the lowest to the highest run at each step.
    #[default]
    MinMax,
    /// The mean ± one (sample) standard deviation.
    Std,
}

/// Runs of one group (two or more), oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub label: String,
    pub members: Vec<usize>,
}

/// The groups among `runs`; runs alone in their group are left out.
pub fn find(runs: &[ReportRun], how: &Grouping) -> Result<Vec<Group>, ReportError> {
    if let Grouping::By(keys) = how {
        for key in keys {
            if !runs.iter().any(|r| r.info.params.contains_key(key)) {
                let mut known: Vec<&str> = runs
                    .iter()
                    .flat_map(|r| r.info.params.keys().map(String::as_str))
                    .collect();
                known.sort_unstable();
                known.dedup();
                return Err(ReportError::BadGroupBy {
                    text: key.clone(),
                    why: format!(
                        "no run has that parameter (some: {})",
                        crate::text::shorten(&known.join(", "), 200)
                    ),
                });
            }
        }
    }
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        let key = match how {
            Grouping::Off => return Ok(Vec::new()),
            Grouping::Seeds => {
                let rest: Vec<(&String, &String)> = run
                    .info
                    .params
                    .iter()
                    .filter(|(k, _)| k.as_str() != "seed" && !found_by_the_run(k))
                    .map(|(k, p)| (k, &p.value))
                    .collect();
                serde_json::to_string(&rest).unwrap_or_default()
            }
            Grouping::By(keys) => keys
                .iter()
                .map(|k| run.info.params.get(k).map_or("-", |p| p.value.as_str()))
                .collect::<Vec<_>>()
                .join("\u{1f}"),
        };
        by_key.entry(key).or_default().push(i);
    }
    let mut groups: Vec<Group> = by_key
        .into_values()
        .filter(|members| members.len() >= 2)
        .filter(|members| *how != Grouping::Seeds || distinct_seeds(runs, members))
        .map(|members| Group {
            label: label(runs, &members, how),
            members,
        })
        .collect();
    groups.sort_by_key(|g| g.members[0]);
    Ok(groups)
}

/// Runs repeated with the same seed are duplicates, not a seed group.
fn distinct_seeds(runs: &[ReportRun], members: &[usize]) -> bool {
    let mut seeds: Vec<Option<&str>> = members
        .iter()
        .map(|&i| runs[i].info.params.get("seed").map(|p| p.value.as_str()))
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds.len() == members.len()
}

fn label(runs: &[ReportRun], members: &[usize], how: &Grouping) -> String {
    let first = &runs[members[0]].info;
    let n = members.len();
    match how {
        Grouping::By(keys) => {
            let values: Vec<String> = keys
                .iter()
                .map(|k| {
                    let v = first.params.get(k).map_or("-", |p| p.value.as_str());
                    format!("{k}={v}")
                })
                .collect();
            format!("{} ({n} runs)", values.join(", "))
        }
        _ => {
            let swept: Vec<String> = first
                .swept_values()
                .filter(|(k, _)| *k != "seed")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let what = if swept.is_empty() {
                first.name.clone()
            } else {
                swept.join(", ")
            };
            format!("{what} ({n} seeds)")
        }
    }
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() == 1 {
        return Some((mean, 0.0));
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, var.sqrt()))
}

/// A group's curve: at each x that any member recorded, the mean of the
/// members that have it, and the band around it.
pub struct Spread {
    pub mean: Points,
    pub lo: Points,
    pub hi: Points,
}

pub fn spread(curves: &[&[(f64, f64)]], band: Band) -> Option<Spread> {
    // x is a step or an epoch: a whole number, exact as a key.
    let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for curve in curves {
        for &(x, y) in curve.iter().filter(|p| p.1.is_finite()) {
            at.entry(x as i64).or_default().push(y);
        }
    }
    if at.is_empty() {
        return None;
    }
    let rows = at.into_iter().map(|(x, ys)| (x as f64, ys));
    let mut s = Spread {
        mean: Vec::new(),
        lo: Vec::new(),
        hi: Vec::new(),
    };
    for (x, ys) in rows {
        let (mean, std) = mean_std(&ys)?;
        let (lo, hi) = match band {
            Band::MinMax => (
                ys.iter().copied().fold(f64::INFINITY, f64::min),
                ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ),
            Band::Std => (mean - std, mean + std),
        };
        s.mean.push((x, mean));
        s.lo.push((x, lo));
        s.hi.push((x, hi));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std_by_hand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum 32, /7.
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(m, 5.0);
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]), Some((3.0, 0.0)));
        assert_eq!(mean_std(&[]), None);
    }

    #[test]
    fn a_spread_averages_whatever_runs_reached_each_step() {
        let a = [(1.0, 1.0), (2.0, 3.0), (3.0, 5.0)];
        let b = [(1.0, 3.0), (2.0, 5.0)];
        let s = spread(&[&a, &b], Band::MinMax).unwrap();
        assert_eq!(s.mean, [(1.0, 2.0), (2.0, 4.0), (3.0, 5.0)]);
        assert_eq!(s.lo, [(1.0, 1.0), (2.0, 3.0), (3.0, 5.0)]);
        assert_eq!(s.hi, [(1.0, 3.0), (2.0, 5.0), (3.0, 5.0)]);
        let s = spread(&[&a, &b], Band::Std).unwrap();
        // Two values 1 and 3: std √2.
        let r2 = 2f64.sqrt();
        assert!((s.lo[0].1 - (2.0 - r2)).abs() < 1e-12 && (s.hi[0].1 - (2.0 + r2)).abs() < 1e-12);
        assert_eq!((s.lo[2].1, s.hi[2].1), (5.0, 5.0));
    }

    #[test]
    fn group_by_text() {
        assert_eq!(Grouping::parse("none").unwrap(), Grouping::Off);
        assert_eq!(
            Grouping::parse("lr,model.n_sigma").unwrap(),
            Grouping::By(vec!["lr".into(), "model.n_sigma".into()])
        );
        assert!(Grouping::parse("lr,,x").is_err());
        assert!(Grouping::parse("a b").is_err());
    }
}
