//! A search's own charts: its optimisation history (each trial's objective
//! in start order, the best so far as a line, pruned trials as crosses) and
//! how much each swept parameter matters.
//!
//! Importance is each parameter's first-order share of the objective's
//! variance, η² = Σ_g n_g (ȳ_g − ȳ)² / Σ (y − ȳ)², with the trials grouped
//! by the parameter's value (numbers in up to four quantile bins of at least
//! two trials), normalised to sum to 1 as Optuna's importances are. It is
//! fANOVA's main effect without the random forest: honest for a handful of
//! trials, where a forest would only fit noise; interactions are not shown.
//! Completed trials only (a pruned trial's value is of fewer epochs), unless
//! fewer than three completed.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{tick, Figure, Look, FONT};
use super::sweep_charts::{Scale, SweepPlot};

/// Each axis's importance, in axis order; None below three trials.
pub fn importance(plot: &SweepPlot) -> Option<Vec<(String, f64)>> {
    let completed: Vec<_> = plot.points.iter().filter(|p| !p.pruned).collect();
    let used: Vec<_> = if completed.len() >= 3 {
        completed
    } else {
        plot.points.iter().collect()
    };
    if used.len() < 3 || plot.axes.is_empty() {
        return None;
    }
    let ys: Vec<f64> = used.iter().map(|p| p.metric).collect();
    let shares: Vec<f64> = plot
        .axes
        .iter()
        .enumerate()
        .map(|(j, axis)| {
            let xs: Vec<f64> = used.iter().map(|p| p.positions[j]).collect();
            let groups = match axis.scale {
                Scale::Categories(_) => by_value(&xs),
                _ => by_quantile(&xs, 4),
            };
            eta_squared(&ys, &groups)
        })
        .collect();
    let total: f64 = shares.iter().sum();
    Some(
        plot.axes
            .iter()
            .zip(shares)
            .map(|(a, s)| (a.key.clone(), if total > 0.0 { s / total } else { 0.0 }))
            .collect(),
    )
}

/// Group labels: one per distinct value.
fn by_value(xs: &[f64]) -> Vec<usize> {
    let mut distinct: Vec<f64> = xs.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    xs.iter()
        .map(|x| distinct.iter().position(|d| d == x).unwrap_or(0))
        .collect()
}

/// Group labels: up to `bins` bins of equal count (at least two each) in
/// value order; equal values share a bin.
fn by_quantile(xs: &[f64], bins: usize) -> Vec<usize> {
    let n = xs.len();
    let bins = bins.min(n / 2).max(1);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut labels = vec![0; n];
    for (rank, &i) in order.iter().enumerate() {
        labels[i] = rank * bins / n;
    }
    // Ties go with the first of their value.
    for k in 1..n {
        let (prev, cur) = (order[k - 1], order[k]);
        if xs[prev] == xs[cur] {
            labels[cur] = labels[prev];
        }
    }
    labels
}

fn eta_squared(ys: &[f64], groups: &[usize]) -> f64 {
    let n = ys.len() as f64;
    let mean = ys.iter().sum::<f64>() / n;
    let total: f64 = ys.iter().map(|y| (y - mean).powi(2)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let k = groups.iter().copied().max().unwrap_or(0) + 1;
    let mut sums = vec![(0.0, 0usize); k];
    for (&y, &g) in ys.iter().zip(groups) {
        sums[g].0 += y;
        sums[g].1 += 1;
    }
    let between: f64 = sums
        .iter()
        .filter(|(_, c)| *c > 0)
        .map(|&(s, c)| c as f64 * (s / c as f64 - mean).powi(2))
        .sum();
    between / total
}

/// The best value after each trial, in trial order.
pub fn best_so_far(values: &[f64], higher_is_better: bool) -> Vec<f64> {
    let mut best = None::<f64>;
    values
        .iter()
        .map(|&v| {
            let b = match best {
                Some(b) if (higher_is_better && b >= v) || (!higher_is_better && b <= v) => b,
                _ => v,
            };
            best = Some(b);
            b
        })
        .collect()
}

pub struct History<'a> {
    pub plot: &'a SweepPlot,
}

impl Figure for History<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        look: &Look,
    ) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let mut points: Vec<_> = self.plot.points.iter().collect();
        points.sort_by_key(|p| p.trial);
        let values: Vec<f64> = points.iter().map(|p| p.metric).collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (y0, y1) = super::chart::axis_range(lo, hi, 0.08);
        let last = points.last().map_or(1, |p| p.trial) as f64;
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("sweep {}: {} by trial", self.plot.id, self.plot.metric),
                (FONT, 16).into_font(),
            )
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d(-0.5..(last + 0.5), y0..y1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .axis_style(RGBColor(90, 90, 90))
            .label_style((FONT, 12).into_font().color(&RGBColor(60, 60, 60)))
            .x_desc("trial (start order)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(e)?;
        // The best so far: a step line through the trials.
        let best = best_so_far(&values, self.plot.higher_is_better);
        let mut steps = Vec::new();
        for (k, (p, b)) in points.iter().zip(&best).enumerate() {
            if k > 0 {
                steps.push((p.trial as f64, best[k - 1]));
            }
            steps.push((p.trial as f64, *b));
        }
        chart
            .draw_series(LineSeries::new(steps, RGBColor(40, 40, 40).stroke_width(2)))
            .map_err(e)?
            .label("best so far")
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 18, y)],
                    RGBColor(40, 40, 40).stroke_width(2),
                )
            });
        for p in &points {
            let colour = look.colours[p.run];
            let at = (p.trial as f64, p.metric);
            if p.pruned {
                chart
                    .draw_series(std::iter::once(Cross::new(at, 5, colour.stroke_width(2))))
                    .map_err(e)?;
            } else {
                chart
                    .draw_series(std::iter::once(Circle::new(at, 5, colour.filled())))
                    .map_err(e)?;
            }
        }
        chart
            .configure_series_labels()
            // Where the best-so-far line starts: empty once it has moved on.
            .position(if self.plot.higher_is_better {
                SeriesLabelPosition::UpperLeft
            } else {
                SeriesLabelPosition::LowerLeft
            })
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FONT, 12))
            .draw()
            .map_err(e)?;
        Ok(())
    }
}

pub struct Importance<'a> {
    pub plot: &'a SweepPlot,
    pub shares: &'a [(String, f64)],
}

impl Figure for Importance<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _look: &Look,
    ) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let n = self.shares.len();
        let names: Vec<String> = self.shares.iter().map(|s| s.0.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "sweep {}: parameter importance for {}",
                    self.plot.id, self.plot.metric
                ),
                (FONT, 16).into_font(),
            )
            .margin(10)
            .margin_right(40)
            .x_label_area_size(34)
            .y_label_area_size(140)
            .build_cartesian_2d(0.0..1.0, -0.5..(n as f64 - 0.5))
            .map_err(e)?;
        let label = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .axis_style(RGBColor(90, 90, 90))
            .label_style((FONT, 12).into_font().color(&RGBColor(60, 60, 60)))
            .x_desc("share of the objective's variance explained (η², normalised)")
            .x_labels(6)
            .x_label_formatter(&|v| tick(*v))
            .y_labels(2 * n + 1)
            .y_label_formatter(&label)
            .draw()
            .map_err(e)?;
        let bar = RGBColor(49, 104, 142);
        chart
            .draw_series(self.shares.iter().enumerate().map(|(i, (_, share))| {
                let y = i as f64;
                Rectangle::new([(0.0, y - 0.3), (*share, y + 0.3)], bar.filled())
            }))
            .map_err(e)?;
        chart
            .draw_series(self.shares.iter().enumerate().map(|(i, (_, share))| {
                Text::new(
                    format!(" {:.2}", share),
                    (*share, i as f64),
                    (FONT, 12).into_font().color(&RGBColor(40, 40, 40)),
                )
            }))
            .map_err(e)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sweep_charts::{Axis, SweepPoint};

    fn plot(points: Vec<(Vec<f64>, f64, bool)>) -> SweepPlot {
        SweepPlot {
            id: "s".into(),
            metric: "best val/iou".into(),
            higher_is_better: true,
            axes: vec![
                Axis {
                    key: "lr".into(),
                    scale: Scale::Log,
                    lo: -5.0,
                    hi: -1.0,
                },
                Axis {
                    key: "aug".into(),
                    scale: Scale::Categories(vec!["a".into(), "b".into()]),
                    lo: 0.0,
                    hi: 1.0,
                },
            ],
            points: points
                .into_iter()
                .enumerate()
                .map(|(i, (positions, metric, pruned))| SweepPoint {
                    run: i,
                    positions,
                    metric,
                    trial: i,
                    pruned,
                })
                .collect(),
            without_metric: Vec::new(),
            runs: Vec::new(),
            search: None,
        }
    }

    #[test]
    fn the_parameter_that_decides_the_objective_is_the_important_one() {
        // The objective follows lr; aug alternates regardless.
        let p = plot(
            (0..8)
                .map(|i| {
                    (
                        vec![-5.0 + i as f64 * 0.5, (i % 2) as f64],
                        i as f64 * 0.1,
                        false,
                    )
                })
                .collect(),
        );
        let shares = importance(&p).unwrap();
        assert_eq!(shares[0].0, "lr");
        assert!(shares[0].1 > 0.9, "{shares:?}");
        assert!((shares[0].1 + shares[1].1 - 1.0).abs() < 1e-12);
        // Hand-worked η² of aug: groups {0,2,4,6} mean 0.3 and {1,3,5,7} mean 0.4,
        // overall 0.35: between 8·0.05² = 0.02, total 0.42.
        let ys: Vec<f64> = (0..8).map(|i| i as f64 * 0.1).collect();
        let groups: Vec<usize> = (0..8).map(|i| i % 2).collect();
        assert!((eta_squared(&ys, &groups) - 0.02 / 0.42).abs() < 1e-12);
    }

    #[test]
    fn pruned_trials_are_left_out_and_too_few_trials_say_nothing() {
        let mut points: Vec<_> = (0..4)
            .map(|i| {
                (
                    vec![-3.0, (i % 2) as f64],
                    0.5 + (i % 2) as f64 * 0.1,
                    false,
                )
            })
            .collect();
        points.push((vec![-1.0, 0.0], 0.0, true));
        let shares = importance(&plot(points)).unwrap();
        // lr is the same for every completed trial: it explains nothing.
        assert_eq!(shares[0].1, 0.0);
        assert_eq!(shares[1].1, 1.0);
        assert!(importance(&plot(vec![(vec![-3.0, 0.0], 0.5, false); 2])).is_none());
    }

    #[test]
    fn quantile_bins_hold_two_or_more_and_keep_ties_together() {
        let labels = by_quantile(&[5.0, 1.0, 3.0, 3.0, 2.0, 9.0, 7.0, 8.0], 4);
        assert_eq!(labels, [2, 0, 1, 1, 0, 3, 2, 3]);
        assert_eq!(by_quantile(&[1.0, 2.0, 3.0], 4), [0, 0, 0]);
        assert_eq!(
            best_so_far(&[0.2, 0.1, 0.5, 0.4], true),
            [0.2, 0.2, 0.5, 0.5]
        );
        assert_eq!(best_so_far(&[0.2, 0.1, 0.5], false), [0.2, 0.1, 0.1]);
    }
}
