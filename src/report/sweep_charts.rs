//! For a sweep: its best validation metric against each swept parameter,
//! and every run as a line across parallel axes (parameters, then the
//! metric), coloured by the metric.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor;

use super::chart::{tick, Figure, Look, FONT};
use super::collect::ReportRun;
use super::groups::{mean_std, Group};
use super::palette::viridis;
use crate::store::query::value_text;
use judge::Judge;

#[derive(Clone, Debug, PartialEq)]
pub enum Scale {
    Linear,
    Log,
    Categories(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct Axis {
    pub key: String,
    pub scale: Scale,
    /// Range of positions (log10 for Log, the index for Categories).
    pub lo: f64,
    pub hi: f64,
}

impl Axis {
    /// Position in [0, 1] along the axis.
    fn unit(&self, position: f64) -> f64 {
        if self.hi > self.lo {
            (position - self.lo) / (self.hi - self.lo)
        } else {
            0.5
        }
    }

    fn label(&self, position: f64) -> String {
        match &self.scale {
            Scale::Linear => tick(position),
            Scale::Log => tick(10f64.powf(position)),
            Scale::Categories(names) => {
                let i = position.round();
                if (position - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
        }
    }
}

pub struct SweepPoint {
    pub run: usize,
    /// Position on each axis.
    pub positions: Vec<f64>,
    pub metric: f64,
    /// The point's index in its sweep (its start order).
    pub trial: usize,
    /// Stopped early by the pruner: its metric is of fewer epochs.
    pub pruned: bool,
}

pub struct SweepPlot {
    pub id: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub axes: Vec<Axis>,
    pub points: Vec<SweepPoint>,
    /// Runs of the sweep without the metric (failed early, say).
    pub without_metric: Vec<usize>,
    /// All runs of the sweep in the report.
    pub runs: Vec<usize>,
    /// The search as its sweep.db records it, when it is not a plain grid.
    pub search: Option<String>,
}

/// One plot per sweep that has at least two runs in the report and a swept
/// key its groups differ in. A seed group of the sweep is one point: its
/// runs' mean, on the axes its runs share (the seed axis goes).
pub fn sweep_plots(runs: &[ReportRun], groups: &[Group]) -> Vec<SweepPlot> {
    let mut by_sweep: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        if let Some(id) = &r.info.sweep_id {
            by_sweep.entry(id).or_default().push(i);
        }
    }
    by_sweep
        .into_iter()
        .filter(|(_, members)| members.len() >= 2)
        .map(|(id, members)| plot(id, &members, runs, groups))
        .filter(|p| !p.axes.is_empty())
        .collect()
}

/// The sweep's members as the points the plots show: each group wholly in
/// the sweep is one unit, every other run its own.
fn units(members: &[usize], groups: &[Group]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in members {
        if out.iter().any(|u| u.contains(&i)) {
            continue;
        }
        let group = groups
            .iter()
            .find(|g| g.members.contains(&i) && g.members.iter().all(|m| members.contains(m)));
        out.push(group.map_or(vec![i], |g| g.members.clone()));
    }
    out
}

fn plot(id: &str, members: &[usize], runs: &[ReportRun], groups: &[Group]) -> SweepPlot {
    let swept = |i: usize| runs[i].info.swept.clone().unwrap_or_default();
    let mut keys: Vec<String> = members
        .iter()
        .flat_map(|&i| swept(i).into_iter().map(|(k, _)| k))
        .collect();
    keys.sort();
    keys.dedup();
    let units = units(members, groups);
    // A key a group's runs differ in (its seed) is not an axis of its mean.
    keys.retain(|k| {
        units.iter().all(|u| {
            let first = swept(u[0]).get(k).cloned();
            u.iter().all(|&i| swept(i).get(k).cloned() == first)
        })
    });
    let axes: Vec<Axis> = keys
        .iter()
        .map(|key| {
            let values: Vec<&serde_json::Value> = members
                .iter()
                .filter_map(|&i| runs[i].info.swept.as_ref()?.get(key))
                .collect();
            axis(key, &values)
        })
        .collect();
    let judge = Judge::of(members, runs);
    let mut points = Vec::new();
    let mut without_metric = Vec::new();
    for unit in &units {
        let i = unit[0];
        let values: Vec<f64> = unit.iter().filter_map(|&m| judge.value(&runs[m])).collect();
        let metric = mean_std(&values).map(|(mean, _)| mean);
        let values = swept(i);
        let positions: Option<Vec<f64>> = axes
            .iter()
            .map(|a| values.get(&a.key).and_then(|v| position(a, v)))
            .collect();
        match (metric, positions) {
            (Some(metric), Some(positions)) => points.push(SweepPoint {
                run: i,
                positions,
                metric,
                trial: runs[i].info.sweep_index.unwrap_or(0).max(0) as usize,
                pruned: unit
                    .iter()
                    .all(|&m| runs[m].info.status == crate::store::RunStatus::Pruned),
            }),
            _ => without_metric.extend(unit),
        }
    }
    SweepPlot {
        id: id.to_string(),
        metric: judge.title,
        higher_is_better: judge.higher_is_better,
        search: judge.search,
        axes,
        points,
        without_metric,
        runs: members.to_vec(),
    }
}

fn axis(key: &str, values: &[&serde_json::Value]) -> Axis {
    let numbers: Option<Vec<f64>> = values.iter().map(|v| v.as_f64()).collect();
    match numbers {
        Some(xs) if !xs.is_empty() => {
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo > 0.0 && hi / lo >= 20.0 {
                Axis {
                    key: key.to_string(),
                    scale: Scale::Log,
                    lo: lo.log10(),
                    hi: hi.log10(),
                }
            } else {
                Axis {
                    key: key.to_string(),
                    scale: Scale::Linear,
                    lo,
                    hi,
                }
            }
        }
        _ => {
            let mut names: Vec<String> = values.iter().map(|v| value_text(v)).collect();
            names.sort();
            names.dedup();
            Axis {
                key: key.to_string(),
                lo: 0.0,
                hi: names.len().saturating_sub(1) as f64,
                scale: Scale::Categories(names),
            }
        }
    }
}

fn position(axis: &Axis, value: &serde_json::Value) -> Option<f64> {
    match &axis.scale {
        Scale::Linear => value.as_f64(),
        Scale::Log => value.as_f64().filter(|x| *x > 0.0).map(f64::log10),
        Scale::Categories(names) => names
            .iter()
            .position(|n| *n == value_text(value))
            .map(|i| i as f64),
    }
}

impl SweepPlot {
    fn metric_range(&self) -> (f64, f64) {
        let lo = self
            .points
            .iter()
            .map(|p| p.metric)
            .fold(f64::INFINITY, f64::min);
        let hi = self
            .points
            .iter()
            .map(|p| p.metric)
            .fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    }

    /// The metric against the parameter of axis `index`.
    pub fn scatter(&self, index: usize) -> Scatter<'_> {
        Scatter {
            plot: self,
            axis: index,
        }
    }

    pub fn parallel(&self) -> Parallel<'_> {
        Parallel { plot: self }
    }
}

pub struct Scatter<'a> {
    plot: &'a SweepPlot,
    axis: usize,
}

impl Scatter<'_> {
    pub fn key(&self) -> &str {
        &self.plot.axes[self.axis].key
    }
}

fn padded((lo, hi): (f64, f64), fraction: f64) -> (f64, f64) {
    super::chart::axis_range(lo, hi, fraction)
}

impl Figure for Scatter<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        look: &Look,
    ) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let axis = &self.plot.axes[self.axis];
        let (x0, x1) = match axis.scale {
            Scale::Categories(_) => (axis.lo - 0.5, axis.hi + 0.5),
            _ => padded((axis.lo, axis.hi), 0.06),
        };
        let (y0, y1) = padded(self.plot.metric_range(), 0.08);
        let categories = match &axis.scale {
            Scale::Categories(names) => names.len(),
            _ => 0,
        };
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{} vs {}", self.plot.metric, axis.key),
                (FONT, 16).into_font(),
            )
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(e)?;
        let x_format = |v: &f64| axis.label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .axis_style(RGBColor(90, 90, 90))
            .label_style((FONT, 12).into_font().color(&RGBColor(60, 60, 60)))
            .x_label_formatter(&x_format)
            .y_label_formatter(&|v| tick(*v))
            .x_desc(axis.key.as_str());
        mesh.x_labels(if categories > 0 {
            2 * categories + 1
        } else {
            5
        })
        .y_labels(6);
        mesh.draw().map_err(e)?;
        // Runs at the same value are spread a little sideways, so that
        // each stays visible.
        let mut at_value: BTreeMap<u64, usize> = BTreeMap::new();
        for p in &self.plot.points {
            *at_value
                .entry(p.positions[self.axis].to_bits())
                .or_default() += 1;
        }
        let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
        let spread = (x1 - x0) * 0.04;
        let dots: Vec<_> = self
            .plot
            .points
            .iter()
            .map(|p| {
                let x = p.positions[self.axis];
                let n = at_value[&x.to_bits()];
                let k = seen.entry(x.to_bits()).or_default();
                let offset = if n > 1 {
                    spread * (*k as f64 / (n - 1) as f64 - 0.5)
                } else {
                    0.0
                };
                *k += 1;
                let colour = look.colours[p.run];
                let style = if p.pruned {
                    colour.stroke_width(2)
                } else {
                    colour.filled()
                };
                Circle::new((x + offset, p.metric), 5, style)
            })
            .collect();
        chart.draw_series(dots).map_err(e)?;
        Ok(())
    }
}

pub struct Parallel<'a> {
    plot: &'a SweepPlot,
}

impl Figure for Parallel<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _look: &Look,
    ) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let plot = self.plot;
        let (m0, m1) = plot.metric_range();
        let metric_axis = Axis {
            key: plot.metric.clone(),
            scale: Scale::Linear,
            lo: m0,
            hi: m1,
        };
        let mut axes: Vec<&Axis> = plot.axes.iter().collect();
        axes.push(&metric_axis);
        let k = axes.len();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("sweep {}: parameters and {}", plot.id, plot.metric),
                (FONT, 16).into_font(),
            )
            .margin(14)
            .margin_left(40)
            .margin_right(70)
            .build_cartesian_2d(-0.05..(k as f64 - 0.95), -0.12..1.1)
            .map_err(e)?;
        let grey = RGBColor(90, 90, 90);
        let label = (FONT, 12).into_font().color(&RGBColor(40, 40, 40));
        let key_font = (FONT, 13).into_font().color(&RGBColor(20, 20, 20));
        let m = |v: f64| metric_axis.unit(v);
        // Worse runs first, so the best lie on top.
        let mut order: Vec<&SweepPoint> = plot.points.iter().collect();
        order.sort_by(|a, b| {
            let (a, b) = (m(a.metric), m(b.metric));
            if plot.higher_is_better {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            }
        });
        for p in order {
            let t = m(p.metric);
            let colour = viridis(if plot.higher_is_better { t } else { 1.0 - t });
            let mut line: Vec<(f64, f64)> = p
                .positions
                .iter()
                .zip(&plot.axes)
                .enumerate()
                .map(|(j, (&pos, a))| (j as f64, a.unit(pos)))
                .collect();
            line.push(((k - 1) as f64, t));
            // A pruned run's line is thin: its metric is of fewer epochs.
            let width = if p.pruned { 1 } else { 2 };
            chart
                .draw_series(LineSeries::new(line, colour.stroke_width(width)))
                .map_err(e)?;
        }
        for (j, axis) in axes.iter().enumerate() {
            let x = j as f64;
            chart
                .draw_series(LineSeries::new(
                    vec![(x, 0.0), (x, 1.0)],
                    grey.stroke_width(1),
                ))
                .map_err(e)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    axis.key.clone(),
                    (x, -0.06),
                    key_font.clone().pos(text_anchor::Pos::new(
                        text_anchor::HPos::Center,
                        text_anchor::VPos::Top,
                    )),
                )))
                .map_err(e)?;
            let ticks: Vec<f64> = match &axis.scale {
                Scale::Categories(names) => (0..names.len()).map(|i| i as f64).collect(),
                _ if axis.hi > axis.lo => vec![axis.lo, (axis.lo + axis.hi) / 2.0, axis.hi],
                _ => vec![axis.lo],
            };
            for pos in ticks {
                let y = axis.unit(pos);
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!(" {}", axis.label(pos)),
                        (x, y),
                        label.clone().pos(text_anchor::Pos::new(
                            text_anchor::HPos::Left,
                            text_anchor::VPos::Center,
                        )),
                    )))
                    .map_err(e)?;
                chart
                    .draw_series(LineSeries::new(
                        vec![(x - 0.015, y), (x, y)],
                        grey.stroke_width(1),
                    ))
                    .map_err(e)?;
            }
        }
        Ok(())
    }
}

mod judge;
#[cfg(test)]
mod tests;
